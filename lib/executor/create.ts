/**
 * createExecutor: the in-process executor or the Web Worker proxy, from one set of options.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Engine } from "../builder/engine.ts";
import type { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import type { Backend } from "../runtime/session.ts";
import { ValidationError } from "../util/errors.ts";
import { parseWith } from "../util/validate.ts";
import { type ExecutorConfigInput, ExecutorConfigSchema } from "./config.ts";
import type { GenerationExecutor } from "./executor.ts";
import { GenerationExecutorProxy } from "./proxy.ts";
import { GenerationExecutorWorker } from "./worker.ts";

/** "inprocess": steps run on the caller's thread; "proxy": in a Web Worker. */
export type ExecutorMode = "inprocess" | "proxy";

/** Options of {@link createExecutor}. */
export interface CreateExecutorOptions {
  readonly engine: Engine;
  /** Where `engine` is saved (the proxy's worker loads it from there); a temporary copy is written when absent. */
  readonly engineDir?: string | null;
  readonly tokenizer: LlmTokenizer | null;
  /** Directory `tokenizer` was loaded from (the proxy's worker loads it again). */
  readonly tokenizerDir?: string | null;
  /** @default "cpu" */
  readonly backend?: Backend;
  /** @default "inprocess" */
  readonly mode?: ExecutorMode;
  readonly config?: ExecutorConfigInput;
  /** The draft model's engine (speculativeConfig DraftTarget). */
  readonly draftEngine?: Engine | null;
  /** Where `draftEngine` is saved (the proxy's worker loads it from there); a temporary copy is written when absent. */
  readonly draftEngineDir?: string | null;
  /** Tensor parallelism over processes: rank 0's `--tp-master` address and how long ranks may take to join. */
  readonly tp?: { readonly tpMaster?: string; readonly rendezvousTimeoutMs?: number };
}

/**
 * Creates an executor over `options.engine`.
 *
 * @example
 * ```ts
 * const executor = await createExecutor({ engine, tokenizer, tokenizerDir: dir, mode: "proxy" });
 * ```
 */
export async function createExecutor(options: CreateExecutorOptions): Promise<GenerationExecutor> {
  const config = options.config ?? {};
  parseWith(ExecutorConfigSchema, config, "ExecutorConfig");
  const backend = options.backend ?? "cpu";
  if ((options.mode ?? "inprocess") === "inprocess") {
    return GenerationExecutorWorker.create({
      engine: options.engine,
      tokenizer: options.tokenizer,
      backend,
      config,
      draftEngine: options.draftEngine,
      tp: options.tp,
    });
  }
  if (options.mode !== "proxy") {
    throw new ValidationError(`executorMode: ${JSON.stringify(options.mode)} is not one of "inprocess", "proxy"`, "executorMode", options.mode);
  }
  if (options.tokenizer && !options.tokenizerDir) {
    throw new ValidationError("createExecutor: proxy mode needs tokenizerDir to load the tokenizer in the worker", "tokenizerDir", null);
  }
  let engineDir = options.engineDir ?? null;
  let tempDir: string | null = null;
  if (!engineDir) {
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-engine-"));
    options.engine.save(tempDir);
    engineDir = tempDir;
  }
  let draftEngineDir = options.draftEngine ? options.draftEngineDir ?? null : null;
  let draftTempDir: string | null = null;
  if (options.draftEngine && !draftEngineDir) {
    draftTempDir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-draft-engine-"));
    options.draftEngine.save(draftTempDir);
    draftEngineDir = draftTempDir;
  }
  const removeTemp = (): void => {
    if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
    if (draftTempDir) fs.rmSync(draftTempDir, { recursive: true, force: true });
  };
  try {
    const tokenizerDir = options.tokenizer ? options.tokenizerDir ?? null : null;
    return await GenerationExecutorProxy.create({ engineDir, tokenizerDir, backend, config, draftEngineDir, tp: options.tp }, {
      cleanup: removeTemp,
      tokenizer: options.tokenizer,
    });
  } catch (e) {
    removeTemp();
    throw e;
  }
}
