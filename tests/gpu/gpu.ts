/**
 * Shared pieces of the GPU tests: whether a GPU is here (and why not), one device per process,
 * a seeded RNG, reduced-precision encoders and an error report with explicit tolerances.
 * Not a test file.
 */
import type { StepInputs } from "../../lib/ir/step_io.ts";
import { test } from "../harness.ts";
import { buildSync } from "../../lib/builder/builder.ts";
import type { Engine } from "../../lib/builder/engine.ts";
import { CudaDevice } from "../../lib/cuda/device.ts";
import { ncclVersion } from "../../lib/cuda/nccl.ts";
import { AutoModelForCausalLM } from "../../lib/models/llama.ts";
import type { Session } from "../../lib/runtime/session.ts";

/** Whether a usable GPU is here; probing opens libcuda (tests only). */
export const gpuProbe: ReturnType<typeof CudaDevice.probe> = CudaDevice.probe();
/** Why GPU tests are skipped here ("" when they run). */
export const noGpuReason: string = gpuProbe.ok ? "" : `no GPU: ${gpuProbe.reason}`;
/** `test`, reported as skipped with the reason when there is no GPU. */
export const gpuTest: (name: string, fn: () => void | Promise<void>, timeoutMs?: number) => void = test.skipIf(noGpuReason, !gpuProbe.ok);

/**
 * `test` that needs a GPU and libnccl, reported as skipped with the reason otherwise; probes libnccl
 * (ncclVersion) when called, so only the NCCL test files load it.
 */
export function ncclTestGate(): typeof gpuTest {
  let reason = "";
  if (gpuProbe.ok) {
    try {
      ncclVersion();
    } catch (e) {
      reason = `no NCCL: ${(e as Error).message.split("\n")[0]}`;
    }
  }
  return test.skipIf(noGpuReason || reason, !gpuProbe.ok || reason !== "");
}

let shared: CudaDevice | null = null;
/** Device 0, opened once for the test process (tests that dispose a device open their own). */
export function device(): CudaDevice {
  return (shared ??= CudaDevice.open(0));
}

/** Deterministic uniform floats in [lo, hi) (mulberry32). */
export function seededUniform(seed: number, n: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 → bf16 bits, round to nearest even. */
export function toBf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0];
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}
/** bf16 bits → number. */
export function fromBf16Bits(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** number → fp16 bits (round to nearest even; normal and subnormal range, no overflow handling needed here). */
export function toF16Bits(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === 0) return sign;
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24); // subnormal
  let e = Math.floor(Math.log2(a));
  let m = Math.round((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  return sign | ((e + 15) << 10) | m;
}
/** fp16 bits → number. */
export function fromF16Bits(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** An fp8 e4m3 (OCP, bias 7) byte for a value exactly representable in it; throws otherwise. */
export function toE4m3Exact(x: number): number {
  if (x === 0) return 0;
  const s = x < 0 ? 0x80 : 0;
  const a = Math.abs(x);
  const e = Math.floor(Math.log2(a));
  if (e + 7 < 1) throw new RangeError(`${x} is subnormal in e4m3 (not needed here)`);
  const m = (a / 2 ** e - 1) * 8;
  if (!Number.isInteger(m) || e + 7 > 15) throw new RangeError(`${x} is not exactly representable in e4m3`);
  return s | ((e + 7) << 3) | m;
}
/** fp8 e4m3 byte → number. */
export function fromE4m3(b: number): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >> 3) & 0xf;
  const m = b & 7;
  if (e === 0) return s * (m / 8) * 2 ** -6;
  return s * (1 + m / 8) * 2 ** (e - 7);
}

/** Largest errors of `got` against `want`, and the worst ratio to the tolerance atol + rtol·|want|. */
export interface ErrorReport {
  maxAbs: number;
  maxRel: number;
  worst: number;
  worstIndex: number;
}

/** Compares elementwise with |got - want| <= atol + rtol·|want|; `worst` > 1 means out of tolerance. */
export function compare(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number): ErrorReport {
  if (got.length !== want.length) throw new RangeError(`length ${got.length} vs ${want.length}`);
  const r: ErrorReport = { maxAbs: 0, maxRel: 0, worst: 0, worstIndex: -1 };
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    const ratio = Number.isNaN(d) ? Infinity : d / (atol + rtol * Math.abs(want[i]));
    r.maxAbs = Math.max(r.maxAbs, d);
    if (want[i] !== 0) r.maxRel = Math.max(r.maxRel, d / Math.abs(want[i]));
    if (ratio > r.worst) {
      r.worst = ratio;
      r.worstIndex = i;
    }
  }
  return r;
}

/** One line for a test log: max abs / rel error and the tolerance used. */
export function describe(label: string, r: ErrorReport, atol: number, rtol: number): string {
  return `${label}: max abs ${r.maxAbs.toExponential(2)}, max rel ${r.maxRel.toExponential(2)} (atol ${atol.toExponential(1)}, rtol ${
    rtol.toExponential(1)
  }, worst/tol ${r.worst.toFixed(3)} at ${r.worstIndex})`;
}

/** One step's inputs for a single sequence of `ids` starting at `pos` in blocks 0.. */
export function step(ids: number[], pos: number, blocks: number[]): StepInputs {
  const T = ids.length;
  return {
    tokenIds: Int32Array.from(ids),
    positions: Int32Array.from({ length: T }, (_, i) => pos + i),
    seqStarts: Int32Array.of(0, T),
    blockTables: Int32Array.from(blocks),
    maxBlocksPerSeq: blocks.length,
    logitRows: Int32Array.of(T - 1),
    sampling: {
      temperature: new Float32Array(1),
      topK: new Int32Array(1),
      topP: new Float32Array(1).fill(1),
      minP: new Float32Array(1),
      seed: new Uint32Array(2),
      step: new Int32Array(1),
    },
  };
}

/** models/kjv-llama built for CUDA (batch 4, 256 tokens). */
export function kjvCudaEngine(dtype: "float32" | "bfloat16"): Engine {
  const model = AutoModelForCausalLM.fromHuggingFace(new URL("../../models/kjv-llama/", import.meta.url).pathname);
  try {
    return buildSync(model, { backend: "cuda", dtype, maxBatchSize: 4, maxNumTokens: 256, maxSeqLen: 256 });
  } finally {
    model.close();
  }
}

/**
 * Greedy decode of `n` tokens after `prompt` (one sequence, blocks 0..); every step's logits kept;
 * decode tokens/s over the steps after the fourth (after the graph captures of the first steps).
 */
export function greedyDecode(s: Session, prompt: number[], n: number, vocab: number): { ids: number[]; logits: Float32Array[]; tokensPerS: number } {
  using kv = s.createKvCache(Math.ceil((prompt.length + n) / s.tokensPerBlock) + 1);
  const blocks = Array.from({ length: Math.ceil((prompt.length + n) / s.tokensPerBlock) }, (_, i) => i);
  const out = { sampledIds: new Int32Array(1), logits: new Float32Array(vocab) };
  s.run(step(prompt, 0, blocks), out, kv);
  const ids = [out.sampledIds[0]], logits = [out.logits.slice()];
  let t0 = 0;
  for (let i = 1; i < n; i++) {
    if (i === 4) t0 = performance.now();
    s.run(step([ids[i - 1]], prompt.length + i - 1, blocks), out, kv);
    ids.push(out.sampledIds[0]);
    logits.push(out.logits.slice());
  }
  return { ids, logits, tokensPerS: (n - 4) / ((performance.now() - t0) / 1000) };
}
