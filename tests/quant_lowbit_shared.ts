/**
 * Shared by tests/quant_sq, quant_w4a8 and quant_nvfp4 (not a test file): the independent float64
 * references of the e4m3 / e2m1 roundings (search over every representable value, ties to even —
 * not the codecs under test), a seeded generator, the kjv-llama perplexity check against float32,
 * and the engine checks (stored form, save/fromDir round trip, CUDA build refused by name).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { buildSync } from "../lib/builder/builder.ts";
import { Engine } from "../lib/builder/engine.ts";
import type { WeightFormat } from "../lib/ir/network.ts";
import { refuseLowbitOnCuda } from "../lib/quantization/lowbit_engine.ts";
import type { QuantizedModel } from "../lib/quantization/quantized_model.ts";
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { UnsupportedError } from "../lib/util/errors.ts";
import { assert } from "./harness.ts";
import { kjvPerplexity } from "./kjv_perplexity.ts";

/** A seeded uniform generator on [−0.5, 0.5). */
export function rng(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5;
}

/** Every finite e4m3 value with its byte, built from the bit layout (1.m·2^(e−7), m·2^−9). */
const E4M3_FINITE: { v: number; b: number }[] = [];
for (let b = 0; b < 128; b++) {
  if (b === 0x7f) continue;
  const e = b >> 3, m = b & 7;
  E4M3_FINITE.push({ v: e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7), b });
}

/** The e4m3 value nearest to x ≥ 0 (ties to the even byte), saturating at 448. */
export function refE4m3(x: number): number {
  if (x >= 448) return 448;
  let best = E4M3_FINITE[0];
  for (const c of E4M3_FINITE) {
    const d = Math.abs(c.v - x), bd = Math.abs(best.v - x);
    if (d < bd || (d === bd && (c.b & 1) === 0)) best = c;
  }
  return best.v;
}

/** The e2m1 magnitudes by code; code & 1 = 0 is even. */
export const E2M1_MAGS = [0, 0.5, 1, 1.5, 2, 3, 4, 6];

/** The e2m1 value nearest to x (ties to the even code), saturating at ±6. */
export function refE2m1(x: number): number {
  const a = Math.min(Math.abs(x), 6);
  let m = 0;
  for (let c = 1; c < 8; c++) {
    const d = Math.abs(E2M1_MAGS[c] - a), bd = Math.abs(E2M1_MAGS[m] - a);
    if (d < bd || (d === bd && (c & 1) === 0)) m = c;
  }
  return x < 0 ? -E2M1_MAGS[m] : E2M1_MAGS[m];
}

const fp32 = Math.fround;

/** NVFP4 fake quantization of `len` values (a multiple of 16) under global scale g: the dequantized values, float64. */
export function refNvfp4(x: ArrayLike<number>, off: number, len: number, g: number): Float64Array {
  const out = new Float64Array(len);
  for (let b = 0; b < len; b += 16) {
    let amax = 0;
    for (let i = 0; i < 16; i++) amax = Math.max(amax, Math.abs(x[off + b + i]));
    const s = amax > 0 ? refE4m3(fp32(amax / fp32(6 * g))) : 1;
    const div = fp32(s * g);
    for (let i = 0; i < 16; i++) out[b + i] = div > 0 ? refE2m1(fp32(x[off + b + i] / div)) * s * g : 0;
  }
  return out;
}

/** max |a_i − b_i| / (1 + |b_i|) over two outputs. */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return m;
}

let f32: Promise<number> | null = null;

/** Held-out kjv-llama perplexity of `qc` within `bound` (fractional) of float32; returns the delta. */
export async function checkPerplexity(qc: QuantConfigInput, bound: number): Promise<number> {
  const base = await (f32 ??= kjvPerplexity());
  const p = await kjvPerplexity(qc);
  const msg = `${qc.quantAlgo} ${p.toFixed(4)} vs float32 ${base.toFixed(4)} (${((p / base - 1) * 100).toFixed(2)}%)`;
  console.log(msg);
  assert.ok(p <= base * (1 + bound), msg);
  assert.notEqual(p, base, `${msg}: exactly the float32 perplexity, nothing was quantized`);
  return p / base - 1;
}

/**
 * Builds a CPU engine of `q`, checks every quantized linear's weightFormat with `check` (returning
 * the bytes its weight tensor must hold), saves and reopens it (tensors, ops and QuantConfig equal),
 * and checks a bfloat16 CUDA build holds the same ops and quantized tensors (lib/backends/cuda/lowbit_launch.ts runs them).
 */
export function checkEngine(q: QuantizedModel, check: (f: WeightFormat, N: number, K: number) => number): void {
  const algo = q.quantConfig.quantAlgo;
  const bc = { backend: "cpu", maxBatchSize: 2, maxNumTokens: 64, maxSeqLen: 128 } as const;
  const e = buildSync(q, bc);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `llmrt-${algo}-`));
  try {
    const linears = e.plan.ops.filter((o) => o.type === "linear" && o.weightFormat);
    assert.equal(linears.length, 6 * 4, "qkv, o, gate_up, down of 6 layers");
    for (const op of linears) {
      if (op.type !== "linear") continue;
      assert.equal(e.readTensor(op.weight).byteLength, check(op.weightFormat!, op.outFeatures, op.inFeatures), op.weight);
    }
    e.save(dir);
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")).quant.quantAlgo, algo);
    const again = Engine.fromDir(dir);
    try {
      assert.deepEqual(again.config.quant, e.config.quant);
      const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v));
      assert.deepEqual(json(again.plan.ops), json(e.plan.ops));
      for (const name of e.tensorNames()) assert.deepEqual(again.readTensor(name), e.readTensor(name), name);
    } finally {
      again.dispose();
    }
  } finally {
    e.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const cuda = buildSync(q, { ...bc, backend: "cuda", dtype: "bfloat16" });
  try {
    const lin = (en: Engine) => en.plan.ops.filter((o) => o.type === "linear" && o.weightFormat).map((o) => JSON.stringify(o));
    const cpu = buildSync(q, bc);
    try {
      assert.deepEqual(lin(cuda), lin(cpu), "the CUDA engine's quantized linears are the CPU engine's");
    } finally {
      cpu.dispose();
    }
  } finally {
    cuda.dispose();
  }
  // The CUDA kernels take in-features of a multiple of 16 only.
  const probe = q.quantizedTensor(q.quantizedNames()[0])!;
  assert.throws(
    () => refuseLowbitOnCuda([{ ...probe, cols: 24 }], "cuda"),
    (err: unknown) => err instanceof UnsupportedError && err.message.includes(`${algo} on CUDA needs`),
  );
}
