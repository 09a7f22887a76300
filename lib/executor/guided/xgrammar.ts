/**
 * Loads xgrammar (`@mlc-ai/web-xgrammar`, the grammar engine TensorRT-LLM and vLLM use, built to
 * WebAssembly) the same way under Bun and Deno, and exposes its embind classes synchronously.
 *
 * Why not `import "@mlc-ai/web-xgrammar"`: the package says `"type": "module"` but ships a UMD
 * script that calls `require` — Bun tolerates that, Deno refuses it ("require is not defined").
 * So the script is read and evaluated as the CommonJS module it is, with `require`, `module` and
 * `__filename` given; the WASM is inlined in it (a data: URL), so nothing is fetched. Its public
 * wrappers are async only because the WASM instantiates asynchronously; once loaded, the embind
 * classes underneath are synchronous, so the script is evaluated with one line appended that hands
 * them out (`binding`), and the executor calls them from its synchronous step.
 *
 * xgrammar reports a bad grammar or schema by printing "[FATAL] …" and aborting the call; the
 * printed text is captured here (a private `console`) and becomes the error's message.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { InternalError } from "../../util/errors.ts";

/** One embind object with a C++ destructor. */
export interface XgHandle {
  delete(): void;
}
/** `std::vector<T>` as embind hands it over. */
export interface XgVector extends XgHandle {
  size(): number;
}
export interface XgTokenizerInfo extends XgHandle {
  GetVocabSize(): number;
}
export interface XgGrammar extends XgHandle {
  ToString(): string;
}
export type XgCompiledGrammar = XgHandle;
export interface XgGrammarCompiler extends XgHandle {
  CompileJSONSchema(
    schema: string,
    anyWhitespace: boolean,
    indent: number | undefined,
    separators: { first: string; second: string } | undefined,
    strictMode: boolean,
    maxWhitespaceCnt: number | undefined,
  ): XgCompiledGrammar;
  CompileBuiltinJSONGrammar(): XgCompiledGrammar;
  CompileGrammar(grammar: XgGrammar): XgCompiledGrammar;
  CompileStructuralTag(json: string): XgCompiledGrammar;
}
export interface XgGrammarMatcher extends XgHandle {
  AcceptToken(id: number, verbose: boolean): boolean;
  GetNextTokenBitmask(vocabSize: number): XgVector;
  IsTerminated(): boolean;
  Reset(): void;
  Rollback(n: number): void;
}

/** The embind module of xgrammar (the names its own wrappers call). */
export interface XgBinding {
  vecStringFromJSArray(a: readonly string[]): XgVector;
  vecIntFromJSArray(a: readonly number[]): XgVector;
  vecIntToView(v: XgVector): Int32Array;
  TokenizerInfo: new (
    encodedVocab: XgVector,
    vocabType: string,
    vocabSize: number | undefined,
    stopTokenIds: XgVector | undefined,
    prependSpaceInTokenization: boolean,
  ) => XgTokenizerInfo;
  GrammarCompiler: new (tokenizerInfo: XgTokenizerInfo, maxThreads: number, cacheEnabled: boolean) => XgGrammarCompiler;
  GrammarMatcher: new (
    compiled: XgCompiledGrammar,
    overrideStopTokens: XgVector | undefined,
    terminateWithoutStopToken: boolean,
    maxRollbackTokens: number,
  ) => XgGrammarMatcher;
  Grammar: {
    FromEBNF: new (ebnf: string, rootRule: string) => XgGrammar;
  };
}

/** The package version this loader was written against (package.json pins it exactly). */
export const XGRAMMAR_VERSION = "0.1.27";

const EXPOSE_MARKER = "exports.default = index;";

let loading: Promise<XgBinding> | null = null;
let loaded: XgBinding | null = null;
/** Lines xgrammar printed during the current call (its error text). */
let printed: string[] = [];

/** A console for the evaluated script: errors are captured for the next error message, the rest dropped. */
const capturingConsole = {
  error: (...a: unknown[]): void => void printed.push(a.map(String).join(" ")),
  warn: (...a: unknown[]): void => void printed.push(a.map(String).join(" ")),
  log: (): void => {},
  info: (): void => {},
  debug: (): void => {},
};

/**
 * Loads and instantiates xgrammar once (about 30 ms); later calls return the same module.
 *
 * @example
 * ```ts
 * const xg = await loadXGrammar();
 * const g = new xg.Grammar.FromEBNF('root ::= "yes" | "no"', "root");
 * ```
 */
export function loadXGrammar(): Promise<XgBinding> {
  loading ??= instantiate().then((b) => (loaded = b), (e) => {
    loading = null;
    throw e;
  });
  return loading;
}

/** The module if `loadXGrammar()` has finished, else null. */
export function loadedXGrammar(): XgBinding | null {
  return loaded;
}

async function instantiate(): Promise<XgBinding> {
  const require = createRequire(import.meta.url);
  let path: string;
  let src: string;
  try {
    path = require.resolve("@mlc-ai/web-xgrammar");
    src = readFileSync(path, "utf8");
  } catch (e) {
    throw new InternalError(`guided decoding: cannot read @mlc-ai/web-xgrammar (run npm ci): ${(e as Error).message}`);
  }
  if (!src.includes(EXPOSE_MARKER)) {
    throw new InternalError(`guided decoding: @mlc-ai/web-xgrammar is not the ${XGRAMMAR_VERSION} build this loader knows (no "${EXPOSE_MARKER}")`);
  }
  const patched = src.replace(EXPOSE_MARKER, `${EXPOSE_MARKER} exports.__llmrtBinding = async () => { await asyncInitBinding(); return binding; };`);
  const module = { exports: {} as { __llmrtBinding?: () => Promise<XgBinding> } };
  // Evaluates the package's own CommonJS script (see the file comment).
  new Function("exports", "module", "require", "__filename", "console", patched)(module.exports, module, require, path, capturingConsole);
  const get = module.exports.__llmrtBinding;
  if (typeof get !== "function") throw new InternalError("guided decoding: @mlc-ai/web-xgrammar did not load");
  return await get();
}

/**
 * Runs one xgrammar call; an abort becomes `onError(message)` with xgrammar's own text (the
 * "[FATAL] file:line: " prefix removed).
 */
export function xgCall<T>(fn: () => T, onError: (message: string) => Error): T {
  checkXgAlive();
  printed = [];
  try {
    return fn();
  } catch (e) {
    const fatal = printed.find((l) => l.includes("[FATAL]"));
    // No "[FATAL]" report: not xgrammar refusing its input but the WebAssembly machine failing (a trap, an abort,
    // a stray C++ exception), after which its memory cannot be trusted: later calls could fail anywhere or hang.
    if (fatal === undefined) crashed = (e as Error)?.message ?? String(e);
    const text = fatal ?? printed.find((l) => !l.startsWith("Aborted(")) ?? (e as Error)?.message ?? String(e);
    throw onError(text.replace(/^.*\[FATAL\]\s*\S+:\d+:\s*/, "").trim());
  } finally {
    printed = [];
  }
}

/** The failure that broke the grammar engine, once one did (then no call goes into it again). */
let crashed: string | null = null;

/** True once the grammar engine failed outside its own error reporting (its objects must not be touched, not even deleted). */
export function xgCrashed(): boolean {
  return crashed !== null;
}

/** Throws once the grammar engine has crashed, instead of calling into its corrupt memory. */
export function checkXgAlive(): void {
  if (crashed !== null) {
    throw new InternalError(
      `guided decoding: the grammar engine (xgrammar, WebAssembly) crashed on an earlier request (${crashed}); ` +
        "guided decoding is unavailable until the process restarts",
    );
  }
}
