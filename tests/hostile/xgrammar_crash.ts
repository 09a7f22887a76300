/**
 * Run as a child process by tests/executor_hostile.test.ts (the crash it provokes breaks the
 * process's grammar engine for good): compiles a regex nested past the WebAssembly stack straight
 * through GuidedCompiler (the submission check refuses it), then tries a plain constraint, and
 * prints what each did as one JSON line.
 */
import { GuidedCompiler, guidedVocabulary } from "../../lib/executor/guided/grammar.ts";
import { normalizeGuidedDecoding } from "../../lib/executor/guided/params.ts";
import { loadXGrammar } from "../../lib/executor/guided/xgrammar.ts";
import { LlmTokenizer } from "../../lib/tokenizer/tokenizer.ts";

const tok = LlmTokenizer.fromDir(new URL("../../../shared/models/stories260k", import.meta.url).pathname);
const compiler = new GuidedCompiler(await loadXGrammar(), guidedVocabulary(tok), tok.vocabSize);
const errorOf = (fn: () => unknown): string => {
  try {
    fn();
    return "ok";
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
};
const deep = errorOf(() => compiler.compile({ kind: "regex", regex: "(".repeat(400) + "a" + ")".repeat(400), anyWhitespace: false }));
const after = errorOf(() => compiler.compile(normalizeGuidedDecoding({ choice: ["yes", "no"] })).matcher([]).dispose());
compiler.dispose();
console.log(JSON.stringify({ deep, after }));
