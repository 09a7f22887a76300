/**
 * The backends a Session can run on, by name: one factory each, and the "auto" choice (the GPU when
 * CUDA finds a usable device). A new backend (TensorRT, tensor-parallel) is one more entry here.
 */
import { CpuSession } from "../backends/cpu/session.ts";
import { CudaSession } from "../backends/cuda/session.ts";
import { CudaDevice } from "../cuda/device.ts";
import type { Backend, EngineView, SessionBackend } from "../ir/backend.ts";
import type { ResolvedSessionOptions } from "./session_options.ts";
import { Engine } from "../builder/engine.ts";
import { TpSession, type TpSessionOptions } from "./tp_session.ts";
import { UnsupportedError } from "../util/errors.ts";

type Factory = (engine: EngineView, options: ResolvedSessionOptions) => SessionBackend;

const FACTORIES: Readonly<Record<Backend, Factory>> = {
  cpu: (engine) => new CpuSession(engine),
  cuda: (engine, o) =>
    new CudaSession(engine, {
      device: o.device,
      cudaGraphs: o.cudaGraphs,
      gemv: o.gemv,
      batchInvariant: o.batchInvariant,
      gemmTune: o.gemmTune,
      pdl: o.pdl,
      quantPdl: o.quantPdl,
      quantRing: o.quantRing,
      batchAttention: o.batchAttention,
      batchAttention2: o.batchAttention2,
      fp8FastAccum: o.fp8FastAccum,
      fp8FusedQuant: o.fp8FusedQuant,
      fp8Pdl: o.fp8Pdl,
      fp8InvariantBuckets: o.fp8InvariantBuckets,
      fp8Gemv1: o.fp8Gemv1,
      wgmmaPrefill: o.wgmmaPrefill,
      decodeSplitK: o.decodeSplitK,
      gemvSplitK: o.gemvSplitK,
      pruneLastLayer: o.pruneLastLayer,
    }),
};

/**
 * Loads `engine` on the backend named in `options`. A tensor-parallel engine (numRanks > 1), or any
 * engine with `tp.rankWorkers`, runs on one worker per rank (`TpSession`, lib/runtime/tp_session.ts).
 */
export function createSessionBackend(
  engine: EngineView,
  options: ResolvedSessionOptions,
  tp: TpSessionOptions & { readonly rankWorkers?: boolean } = {},
): SessionBackend {
  const tpRun = engine instanceof Engine && (engine.config.numRanks > 1 || tp.rankWorkers || tp.tpMaster !== undefined);
  const kvq = engine.plan.attributes.kvCache;
  // A quantized KV cache: the CPU backend, or one CUDA session of a bfloat16 engine (tiled head dims).
  const cudaKvOk = options.backend === "cuda" && engine.plan.elementBytes === 2 && [32, 64, 128].includes(engine.plan.attributes.headDim);
  if (kvq && ((options.backend !== "cpu" && !cudaKvOk) || tpRun)) {
    throw new UnsupportedError(
      `Session: this engine stores its KV cache as ${kvq.quantAlgo}; only the CPU backend and one CUDA session of a bfloat16 engine (head dim 32/64/128) read a quantized KV cache yet (asked for ${options.backend}${
        tpRun ? " with rank workers" : ""
      })`,
      "backend",
      options.backend,
    );
  }
  if (tpRun) return new TpSession(engine as Engine, options, tp);
  return FACTORIES[options.backend](engine, options);
}

/** Whether a usable CUDA device is here, and why not when it is not. */
export function probeCuda(): { ok: boolean; reason?: string } {
  return CudaDevice.probe();
}

/** "auto" → "cuda" when a usable GPU is here, else "cpu"; an explicit name is kept. */
export function resolveBackend(b: Backend | "auto"): Backend {
  if (b !== "auto") return b;
  return probeCuda().ok ? "cuda" : "cpu";
}
