/**
 * `runTpWorker`: one tensor-parallel rank in its own process (what `llmrt tp-worker` runs), for
 * ranks on several processes or hosts. Rank 0 is the process that runs the executor
 * (`LLM.create({ tensorParallelSize: N, tpMaster: "host:port" })`, `llmrt serve --tp N --tp-master
 * host:port`); every other rank runs this with the same model and connects to rank 0.
 */
import { z } from "zod";
import { Engine } from "../builder/engine.ts";
import { engineSource } from "../runtime/tp_session.ts";
import { runRemoteRank } from "../runtime/tp_remote.ts";
import type { RemoteEngineSpec } from "../runtime/tp_wire.ts";
import { ValidationError } from "../util/errors.ts";
import { parseWith } from "../util/validate.ts";
import { LlmOptionsSchema } from "./llm_options.ts";
import { openOrBuild } from "./open_engine.ts";

/** Options of {@link runTpWorker}. */
export const TpWorkerOptionsSchema = z.strictObject({
  /** The engine directory rank 0 runs (built with `llmrt build --tp N`), or the same HF checkpoint (built here with rank 0's build options, engine cached). */
  model: z.string().min(1),
  /** Rank 0's `host:port`. */
  tpMaster: z.string().min(1),
  /** This rank, 1 … N-1. */
  rank: z.number().int().min(1),
  /** The group size expected (checked against rank 0's). @default rank 0's */
  tensorParallelSize: z.number().int().positive().optional(),
  /** CUDA device of this rank on this host. @default rank mod the visible device count */
  device: z.number().int().nonnegative().optional(),
  /** How long to keep trying to reach rank 0 (ms). @default 300000 */
  connectTimeoutMs: z.number().int().positive().optional(),
  /** Keep an engine built from a checkpoint on disk (LLMRT_CACHE_DIR). @default true */
  cacheEngine: z.boolean().default(true),
});
export type TpWorkerOptions = z.input<typeof TpWorkerOptionsSchema>;

/**
 * Runs one rank until rank 0 ends the session (resolves) or fails (rejects with WorkerError; a
 * refused rank or a different engine: ValidationError).
 *
 * @example
 * ```ts
 * // host B; rank 0 runs on 10.0.0.1 with LLM.create({ model: dir, tensorParallelSize: 2, tpMaster: "0.0.0.0:29500" })
 * await runTpWorker({ model: "/models/llama-tp2", tpMaster: "10.0.0.1:29500", rank: 1 });
 * ```
 */
export async function runTpWorker(options: TpWorkerOptions, log?: (line: string) => void): Promise<void> {
  const o = parseWith(TpWorkerOptionsSchema, options, "runTpWorker options");
  if (o.tensorParallelSize !== undefined && o.rank >= o.tensorParallelSize) {
    throw new ValidationError(`runTpWorker options.rank: ${o.rank} outside [1, ${o.tensorParallelSize})`, "rank", o.rank);
  }
  await runRemoteRank({
    tpMaster: o.tpMaster,
    rank: o.rank,
    worldSize: o.tensorParallelSize,
    device: o.device,
    connectTimeoutMs: o.connectTimeoutMs,
    log,
    openEngine: (spec, worldSize) => openRankEngines(o.model, spec, worldSize, o.cacheEngine),
  });
}

/** Opens `model` as rank 0 described it: an engine directory as it is, a checkpoint built with rank 0's options. */
function openRankEngines(model: string, spec: RemoteEngineSpec, worldSize: number, cacheEngine: boolean) {
  if (Engine.isEngineDir(model)) {
    const engine = Engine.fromDir(model);
    if (engine.config.numRanks !== worldSize) {
      engine.dispose();
      throw new ValidationError(
        `tp-worker --model: the engine in ${JSON.stringify(model)} has ${engine.config.numRanks} rank(s), rank 0 runs ${worldSize}`,
        "model",
        model,
      );
    }
    return { engine, source: () => ({ kind: "dir" as const, dir: model }) };
  }
  const o = parseWith(LlmOptionsSchema, {
    model,
    backend: spec.build.backend,
    dtype: spec.dtype,
    buildConfig: spec.build,
    tensorParallelSize: worldSize,
    cacheEngine,
    ...(spec.quant ? { quantConfig: spec.quant } : {}),
  }, "tp-worker");
  const { engine, engineDir } = openOrBuild(o, spec.build.backend);
  return { engine, source: (r: number) => engineDir ? { kind: "dir" as const, dir: engineDir } : engineSource(engine, r) };
}
