/**
 * Pieces of the batch-1 benches (bench/quant_e2e.ts, fp8_e2e.ts, latency.ts; launch totals also
 * bench/host_profile.ts): one greedy sequence's step inputs, the prefill + timed decode run, the
 * bytes a decode step reads, and the logits comparisons. Not a benchmark by itself.
 */
import type { Engine } from "../lib/builder/engine.ts";
import type { StepInputs } from "../lib/ir/step_io.ts";
import type { KvCache, Session } from "../lib/runtime/session.ts";

/** Step inputs of one greedy sequence in `blocks` (the same block table every step): ids from position pos. */
export function greedyStepper(blocks: Int32Array): (ids: number[], pos: number) => StepInputs {
  const greedy = {
    temperature: new Float32Array(1),
    topK: new Int32Array(1),
    topP: new Float32Array(1).fill(1),
    minP: new Float32Array(1),
    seed: new Uint32Array(2),
    step: new Int32Array(1),
  };
  return (ids, pos) => ({
    tokenIds: Int32Array.from(ids),
    positions: Int32Array.from(ids, (_, i) => pos + i),
    seqStarts: Int32Array.of(0, ids.length),
    blockTables: blocks,
    maxBlocksPerSeq: blocks.length,
    logitRows: Int32Array.of(ids.length - 1),
    sampling: greedy,
  });
}

/** What prefillAndDecode measured. */
export interface DecodeRun {
  /** Last prompt position's logits (prefill path). */
  readonly logits: Float32Array;
  /** Logits of the first decode step, fed a fixed token (prompt[5]; the decode path: GEMV kernels, graphs). */
  readonly decodeLogits: Float32Array;
  /** The sampled ids from that first decode step on. */
  readonly ids: number[];
  readonly tokS: number;
  readonly stepMs: number;
}

/**
 * Prefills `prompt` (from position 0), runs one decode step of prompt[5] at position prompt.length
 * (its logits kept), 8 warm-up decode steps (graph capture), then `numDecode` timed ones; each step
 * syncs on its sampled id.
 */
export function prefillAndDecode(
  session: Session,
  kv: KvCache,
  step: (ids: number[], pos: number) => StepInputs,
  vocab: number,
  prompt: number[],
  numDecode: number,
): DecodeRun {
  const logits = new Float32Array(vocab);
  const sampled = new Int32Array(1);
  session.run(step(prompt, 0), { logits, sampledIds: sampled }, kv);
  const decodeLogits = new Float32Array(vocab);
  session.run(step([prompt[5]], prompt.length), { logits: decodeLogits, sampledIds: sampled }, kv);
  const ids = [sampled[0]];
  let pos = prompt.length + 1;
  for (let i = 0; i < 8; i++, pos++) {
    session.run(step([ids[ids.length - 1]], pos), { sampledIds: sampled }, kv);
    ids.push(sampled[0]);
  }
  const t0 = performance.now();
  for (let i = 0; i < numDecode; i++, pos++) {
    session.run(step([ids[ids.length - 1]], pos), { sampledIds: sampled }, kv);
    ids.push(sampled[0]);
  }
  const ms = performance.now() - t0;
  return { logits, decodeLogits, ids, tokS: (numDecode / ms) * 1e3, stepMs: ms / numDecode };
}

/**
 * Bytes a decode step reads from the engine's weights on the device (bf16 floats, uint8 packed ints / e4m3,
 * f32 scales and zeros); an untied embedding table (llama-3.1-8b) is left out: a step reads one row of it.
 */
export function deviceWeightBytes(e: Engine): number {
  let total = 0;
  const names = e.tensorNames();
  // An untied embedding table gives one row per step (only a tied one is read whole, as the lm_head).
  const untied = names.some((n) => /(^|\.)lm_head(\.weight)?$/.test(n));
  for (const n of names) {
    if (untied && /(^|\.)embed_tokens(\.weight)?$/.test(n)) continue;
    const info = e.tensorInfo(n);
    const elems = info.shape.reduce((a, b) => a * b, 1);
    total += info.dtype === "uint8" ? elems : info.dtype === "float32" && /\.(scales|zeros)$/.test(n) ? elems * 4 : elems * 2;
  }
  return total;
}

/** ‖a − b‖₂ / ‖b‖₂. */
export function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

/** Index of the largest value (the first one on ties). */
export function argmax(a: Float32Array): number {
  return a.reduce((best, v, i) => (v > a[best] ? i : best), 0);
}

/** Launches and milliseconds per kernel name of a profiled decode step (CudaSession.profileDecodeStep). */
export function launchTotals(launches: readonly { readonly name: string; readonly ms: number }[]): Map<string, { n: number; ms: number }> {
  const byName = new Map<string, { n: number; ms: number }>();
  for (const l of launches) {
    const e = byName.get(l.name) ?? { n: 0, ms: 0 };
    e.n++;
    e.ms += l.ms;
    byName.set(l.name, e);
  }
  return byName;
}
