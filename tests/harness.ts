/**
 * One test harness for Bun and Deno: the same test file runs under `bun test` and `deno test`.
 * Assertions come from `node:assert/strict` (re-exported as `assert`).
 *
 * @example
 * ```ts
 * import { assert, test } from "./harness.ts";
 * test("adds", () => assert.equal(1 + 1, 2));
 * test.skipIf("no GPU here", true)("gpu alloc", () => {});
 * ```
 */
export { default as assert } from "node:assert/strict";

type TestFn = () => void | Promise<void>;

interface BunTestModule {
  test: ((name: string, fn: TestFn, timeoutMs?: number) => void) & {
    skip: (name: string, fn: TestFn) => void;
  };
}
interface DenoTestApi {
  test(def: { name: string; fn: TestFn; ignore?: boolean; sanitizeOps?: boolean; sanitizeResources?: boolean }): void;
}

/** True when running under Bun. */
export const isBun: boolean = "Bun" in globalThis;
/** True when running under Deno. */
export const isDeno: boolean = "Deno" in globalThis;
/** "bun" or "deno": the runtime executing the tests. */
export const runtimeName: "bun" | "deno" = isBun ? "bun" : "deno";

const bunSpecifier = "bun:test";
const bunTest: BunTestModule | null = isBun ? await import(bunSpecifier) as BunTestModule : null;
const denoApi = (globalThis as unknown as { Deno?: DenoTestApi }).Deno;

/** Default per-test timeout (ms); slow golden tests pass their own. */
const DEFAULT_TIMEOUT_MS = 120_000;

function register(name: string, fn: TestFn, opts: { skipReason?: string; timeoutMs?: number } = {}): void {
  const label = opts.skipReason ? `${name} [skipped: ${opts.skipReason}]` : name;
  if (bunTest) {
    if (opts.skipReason) bunTest.test.skip(label, fn);
    else bunTest.test(label, fn, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  } else if (denoApi) {
    denoApi.test({ name: label, fn, ignore: !!opts.skipReason, sanitizeOps: false, sanitizeResources: false });
  } else {
    throw new Error("tests/harness.ts: neither Bun nor Deno is running this file");
  }
}

/** Registers a test. `timeoutMs` applies under Bun (Deno has no per-test timeout). */
export function test(name: string, fn: TestFn, timeoutMs?: number): void {
  register(name, fn, { timeoutMs });
}

/** Returns a `test` that is reported as skipped with `reason` when `cond` holds. */
test.skipIf = (reason: string, cond: boolean) => (name: string, fn: TestFn, timeoutMs?: number): void =>
  register(name, fn, { skipReason: cond ? reason : undefined, timeoutMs });

/** Path of ../shared beside the checkout (tests may read models and tokenizers from it). */
export const sharedDir: string = new URL("../../shared/", import.meta.url).pathname;

const testEnv = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
/**
 * Backend the backend-neutral suites (executor, LLM API, sampling, context logits) run on:
 * `LLMRT_TEST_BACKEND=cuda` repeats them on the GPU host. CUDA engines are then built in float32 so
 * the CPU goldens (fp32 references) hold there too.
 */
export const testBackend: "cpu" | "cuda" = testEnv.LLMRT_TEST_BACKEND === "cuda" ? "cuda" : "cpu";
/** Build options that select {@link testBackend} (spread into a BuildConfig). */
export const testBuild: { backend: "cpu" | "cuda"; dtype?: "float32" } = testBackend === "cuda" ? { backend: "cuda", dtype: "float32" } : { backend: "cpu" };
/** LLM.create options that select {@link testBackend}. */
export const testLlm: { backend: "cpu" | "cuda"; dtype?: "float32" } = testBuild;

/** Every real tokenizer set in ../shared, by name → directory (the tokenizer suites run over all). */
export const tokenizerSets: Readonly<Record<string, string>> = Object.freeze({
  "tinyllama-chat": `${sharedDir}tokenizers/tinyllama-chat`,
  "phi-3-mini": `${sharedDir}tokenizers/phi-3-mini`,
  "smollm": `${sharedDir}tokenizers/smollm`,
  "smollm2-135m-ft-chatml": `${sharedDir}tokenizers/smollm2-135m-ft-chatml`,
  "stories260k": `${sharedDir}models/stories260k`,
});
