// Guided decoding below the executor: xgrammar loads in this runtime, vocabularies are read in the
// right form, masks keep random walks inside the grammar (JSON from zod, regex, choice, EBNF) on a
// byte-level BPE (kjv-llama) and a SentencePiece byte-fallback vocabulary (stories260k), stop ids
// only where the grammar accepts, and bad constraints are errors naming the field.
import { z } from "zod";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { loadXGrammar } from "../lib/executor/guided/xgrammar.ts";
import { applyBitmask, GuidedCompiler, type GuidedMatcher, guidedVocabulary } from "../lib/executor/guided/grammar.ts";
import { type GuidedDecodingInput, normalizeGuidedDecoding, parseGuidedOutput, responseFormatToGuidedDecoding } from "../lib/executor/guided/params.ts";
import { UnsupportedError, ValidationError } from "../lib/util/errors.ts";
import { assert, sharedDir, test, tokenizerSets } from "./harness.ts";

const kjvDir = new URL("../models/kjv-llama", import.meta.url).pathname;
const storiesDir = `${sharedDir}models/stories260k`;
const xg = await loadXGrammar();

interface Vocab {
  readonly tok: LlmTokenizer;
  readonly compiler: GuidedCompiler;
  /** Text of each id alone. */
  readonly pieces: readonly string[];
  readonly eos: number;
  readonly V: number;
}
const vocabs = new Map<string, Vocab>();
/** A compiler over `dir`'s tokenizer, with `extra` padding ids past the tokenizer's (as an engine's vocab may have). */
function vocab(dir: string, extra = 0): Vocab {
  const key = `${dir}|${extra}`;
  let v = vocabs.get(key);
  if (!v) {
    const tok = LlmTokenizer.fromDir(dir);
    const V = tok.vocabSize + extra;
    const pieces = Array.from({ length: tok.vocabSize }, (_, i) => tok.decode([i], { skipSpecialTokens: false }));
    v = { tok, compiler: new GuidedCompiler(xg, guidedVocabulary(tok), V), pieces, eos: tok.eosTokenId!, V };
    vocabs.set(key, v);
  }
  return v;
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Generates with random logits under the mask until a stop id is accepted (or maxSteps): each step
 * masks a random row, checks the pick is allowed, and accepts it. After `settleAfter` steps it
 * prefers tokens that close something (a stop id, or a piece with `"`, `}` or `]`), so walks end.
 */
function walk(v: Vocab, m: GuidedMatcher, seed: number, maxSteps = 80, settleAfter = 12): { ids: number[]; stopped: boolean } {
  const rand = rng(seed);
  const ids: number[] = [];
  for (let step = 0; step < maxSteps; step++) {
    const row = new Float32Array(v.V);
    for (let i = 0; i < v.V; i++) row[i] = rand();
    const allowedCount = m.applyMask(row);
    const allowed: number[] = [];
    for (let i = 0; i < v.V; i++) if (row[i] !== -Infinity) allowed.push(i);
    assert.equal(allowed.length, allowedCount);
    assert.ok(allowed.length > 0, `step ${step}: nothing allowed after ${JSON.stringify(v.tok.decode(ids))}`);
    let pool = allowed;
    if (step >= settleAfter) {
      const closing = allowed.filter((i) => m.stopIds.includes(i) || /["}\]]/.test(v.pieces[i] ?? ""));
      if (closing.length > 0) pool = closing;
    }
    const id = pool[Math.floor(rand() * pool.length)];
    assert.ok(m.accept(id), `step ${step}: allowed id ${id} was rejected`);
    if (m.stopIds.includes(id)) return { ids, stopped: true };
    ids.push(id);
  }
  return { ids, stopped: false };
}

const Person = z.object({ name: z.string(), age: z.number().int() });

test("xgrammar loads (WASM, no network) and reads kjv-llama as byte-level BPE, stories260k and tinyllama as SentencePiece byte-fallback", () => {
  assert.equal(typeof xg.GrammarMatcher, "function");
  assert.equal(guidedVocabulary(LlmTokenizer.fromDir(kjvDir)).vocabType, "byte_level");
  assert.equal(guidedVocabulary(LlmTokenizer.fromDir(storiesDir)).vocabType, "byte_fallback");
  assert.equal(guidedVocabulary(LlmTokenizer.fromDir(tokenizerSets["tinyllama-chat"])).vocabType, "byte_fallback");
  assert.equal(guidedVocabulary(LlmTokenizer.fromDir(tokenizerSets["smollm"])).vocabType, "byte_level");
  const kjv = guidedVocabulary(LlmTokenizer.fromDir(kjvDir));
  assert.equal(kjv.tokens[1], ""); // <|eos|> is special: never inside a grammar
});

for (const [name, dir] of [["kjv-llama", kjvDir], ["stories260k", storiesDir]] as const) {
  test(`${name}: JSON from a zod schema — 12 random masked walks each parse and validate as { name: string, age: int }`, () => {
    const v = vocab(dir);
    const g = normalizeGuidedDecoding({ json: Person });
    const compiled = v.compiler.compile(g);
    for (let seed = 1; seed <= 12; seed++) {
      using m = compiled.matcher([v.eos]);
      const { ids, stopped } = walk(v, m, seed);
      const text = v.tok.decode(ids);
      assert.ok(stopped, `seed ${seed}: no stop after ${JSON.stringify(text)}`);
      const r = parseGuidedOutput(g, text);
      assert.ok(r.ok, `seed ${seed}: ${JSON.stringify(text)} ${r.ok ? "" : r.error}`);
      const value = Person.parse(r.value);
      assert.deepEqual(Object.keys(value), ["name", "age"]);
    }
  });

  test(`${name}: regex and choice walks match; the stop id is allowed only once the grammar accepts`, () => {
    const v = vocab(dir);
    const re = "(cat|dog)s? [0-9]{2,3}";
    const compiled = v.compiler.compile(normalizeGuidedDecoding({ regex: re }));
    for (let seed = 1; seed <= 10; seed++) {
      using m = compiled.matcher([v.eos]);
      const { ids, stopped } = walk(v, m, seed, 40, 0);
      const text = v.tok.decode(ids);
      assert.ok(stopped && new RegExp(`^(?:${re})$`).test(text), `seed ${seed}: ${JSON.stringify(text)}`);
    }
    const choices = ["yes", "no", 'maybe "so"'];
    const cc = v.compiler.compile(normalizeGuidedDecoding({ choice: choices }));
    const seen = new Set<string>();
    for (let seed = 1; seed <= 12; seed++) {
      using m = cc.matcher([v.eos]);
      const row = new Float32Array(v.V).fill(1);
      m.applyMask(row);
      assert.equal(row[v.eos], -Infinity, "stop before anything was generated");
      const { ids, stopped } = walk(v, m, seed, 20, 0);
      const text = v.tok.decode(ids);
      assert.ok(stopped && choices.includes(text), `seed ${seed}: ${JSON.stringify(text)}`);
      seen.add(text);
    }
    assert.ok(seen.size >= 2, `walks reached only ${[...seen]}`);
  });
}

test("EBNF grammar: walks stay in the language; ids past the tokenizer's vocabulary are never allowed", () => {
  const v = vocab(storiesDir, 13); // V = 525, not a multiple of 32
  const compiled = v.compiler.compile(normalizeGuidedDecoding({ grammar: 'root ::= "(" item ("," item)* ")"\nitem ::= [a-c]+' }));
  for (let seed = 1; seed <= 10; seed++) {
    using m = compiled.matcher([v.eos]);
    const row = new Float32Array(v.V).fill(0);
    m.applyMask(row);
    for (let id = v.tok.vocabSize; id < v.V; id++) assert.equal(row[id], -Infinity, `padding id ${id}`);
    const { ids, stopped } = walk(v, m, seed, 60, 6);
    const text = v.tok.decode(ids);
    assert.ok(stopped && /^\([a-c]+(,[a-c]+)*\)$/.test(text), `seed ${seed}: ${JSON.stringify(text)}`);
  }
});

test("jsonObject and anyWhitespace: walks give JSON objects", () => {
  const v = vocab(kjvDir);
  for (const input of [{ jsonObject: true }, { json: Person, anyWhitespace: true }] as GuidedDecodingInput[]) {
    const g = normalizeGuidedDecoding(input);
    const compiled = v.compiler.compile(g);
    for (let seed = 1; seed <= 6; seed++) {
      using m = compiled.matcher([v.eos]);
      const { ids, stopped } = walk(v, m, seed, 120, 10);
      const text = v.tok.decode(ids);
      const r = parseGuidedOutput(g, text);
      assert.ok(stopped && r.ok && typeof r.value === "object", `${g.kind} seed ${seed}: ${JSON.stringify(text)}`);
    }
  }
});

test("a matcher rejects a token the mask bans and stays where it was; no stop ids: it terminates by itself", () => {
  const v = vocab(kjvDir);
  const compiled = v.compiler.compile(normalizeGuidedDecoding({ choice: ["And"] }));
  using m = compiled.matcher([v.eos]);
  const bad = v.tok.encode("Zebra", { addSpecialTokens: false })[0];
  assert.equal(m.accept(bad), false);
  assert.equal(m.accept(v.eos), false);
  for (const id of v.tok.encode("And", { addSpecialTokens: false })) assert.ok(m.accept(id));
  assert.equal(m.isTerminated, false);
  assert.ok(m.accept(v.eos));
  assert.ok(m.isTerminated);
  using free = compiled.matcher([]);
  for (const id of v.tok.encode("And", { addSpecialTokens: false })) assert.ok(free.accept(id));
  assert.ok(free.isTerminated);
});

test("applyBitmask: bans exactly the zero bits, counts the rest, leaves -inf entries banned", () => {
  const row = new Float32Array(70).fill(1);
  row[3] = -Infinity;
  const mask = new Int32Array([-1, 0b1010, 1 << 5]); // ids 0-31, 33, 35, 69
  const n = applyBitmask(row, mask);
  const kept = [...row.keys()].filter((i) => row[i] !== -Infinity);
  assert.deepEqual(kept, [...Array(32).keys()].filter((i) => i !== 3).concat([33, 35, 69]));
  assert.equal(n, kept.length);
});

test("bad constraints are errors naming the field: unsatisfiable schema, bad EBNF, bad regex, unrepresentable zod, two kinds", () => {
  const v = vocab(kjvDir);
  const compileErr = (input: GuidedDecodingInput): Error => {
    try {
      v.compiler.compile(normalizeGuidedDecoding(input));
    } catch (e) {
      return e as Error;
    }
    throw new Error(`no error for ${JSON.stringify(input)}`);
  };
  const unsat = compileErr({ json: { type: "string", minLength: 5, maxLength: 2 } });
  assert.ok(
    unsat instanceof ValidationError && unsat.field === "guidedDecoding.json" && /minLength 5 is greater than maxLength 2/.test(unsat.message),
    unsat.message,
  );
  const ebnf = compileErr({ grammar: "root ::= foo" });
  assert.ok(ebnf instanceof ValidationError && ebnf.field === "guidedDecoding.grammar" && /Rule "foo" is not defined/.test(ebnf.message), ebnf.message);
  const re = compileErr({ regex: "(ab" });
  assert.ok(re instanceof ValidationError && re.field === "guidedDecoding.regex", re.message);
  const date = compileErr({ json: z.object({ at: z.date() }) });
  assert.ok(date instanceof UnsupportedError && date.field === "guidedDecoding.json", date.message);
  const two = compileErr({ regex: "a", choice: ["a"] } as unknown as GuidedDecodingInput);
  assert.ok(two instanceof ValidationError && /exactly one of/.test(two.message), two.message);
  // The compiler still works after xgrammar aborted those calls.
  using m = v.compiler.compile(normalizeGuidedDecoding({ choice: ["And"] })).matcher([v.eos]);
  assert.ok(m.accept(v.tok.encode("And", { addSpecialTokens: false })[0]));
});

test("a zod schema's property named __proto__ stays in its JSON Schema (it was assigned, which set the prototype)", () => {
  const g = normalizeGuidedDecoding({ json: z.object({ ["__proto__"]: z.string(), a: z.number() }) });
  const schema = JSON.parse(g.jsonSchema!);
  assert.deepEqual(Object.keys(schema.properties), ["__proto__", "a"]);
  assert.deepEqual(schema.properties["__proto__"], { type: "string" });
});

test("parseGuidedOutput validates with the zod schema (output type) or the JSON Schema; response_format maps to guidedDecoding", () => {
  const Coerced = z.object({ n: z.string().transform((s) => s.length) });
  const g = normalizeGuidedDecoding({ json: Coerced });
  assert.deepEqual(parseGuidedOutput(g, '{"n":"abc"}'), { ok: true, value: { n: 3 } });
  const fromJson = normalizeGuidedDecoding({ json: { type: "object", properties: { a: { type: "integer" } }, required: ["a"] } });
  assert.deepEqual(parseGuidedOutput(fromJson, '{"a":4}'), { ok: true, value: { a: 4 } });
  assert.equal(parseGuidedOutput(fromJson, '{"a":4.5}').ok, false);
  assert.equal(parseGuidedOutput(fromJson, '{"a":').ok, false);
  // Crossing to a worker drops the zod schema (non-enumerable) but keeps the JSON Schema.
  const cloned = structuredClone(normalizeGuidedDecoding({ json: Person }));
  assert.equal(cloned.zodSchema, undefined);
  assert.deepEqual(parseGuidedOutput(cloned, '{"name":"x","age":3}'), { ok: true, value: { name: "x", age: 3 } });
  assert.equal(parseGuidedOutput(cloned, '{"name":"x","age":3.5}').ok, false);

  assert.equal(responseFormatToGuidedDecoding({ type: "text" }), undefined);
  assert.deepEqual(responseFormatToGuidedDecoding({ type: "json_object" }), { jsonObject: true });
  const schema = { type: "object", properties: { a: { type: "string" } } };
  assert.deepEqual(responseFormatToGuidedDecoding({ type: "json_schema", json_schema: { name: "x", schema } }), { json: schema });
  assert.throws(() => responseFormatToGuidedDecoding({ type: "yaml" }), (e: Error) => e instanceof ValidationError && e.field === "response_format.type");
});
