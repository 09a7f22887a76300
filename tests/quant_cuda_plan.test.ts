// The CUDA launch plan of quantized engines, checked without a GPU: every weight-only linear of a
// bf16 engine runs the quantized GEMV (decode-sized steps) or dequantize-to-scratch + cuBLASLt
// (prefill, large decode batches, fp32 logits) with the right addresses, shapes and group size, and
// every launch's argument count matches its kernel's signature; in fused decode steps, quantized
// linears take the bf16 plan's RMSNorm prologues and residual / SiLU·mul epilogues. The kernels'
// arithmetic is checked on a GPU by tests/quant_cuda.test.ts, the fused plan's results on the fake
// device by tests/quant_cuda_fused.test.ts; engines end to end by bench/quant_e2e.ts (bench/RESULTS.md).
import {
  type GemmLaunch,
  GEMV_MAX_ROWS,
  isPdlKernel,
  type KernelLaunch,
  kernelSignature,
  type LaunchEnv,
  planLaunches,
} from "../lib/backends/cuda/launch_plan.ts";
import { quantGemvGrid } from "../lib/backends/cuda/quant_launch.ts";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { fakeLaunchEnv } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const kjv = new URL("../models/kjv-llama/", import.meta.url).pathname;
function cudaEngine(qc: QuantConfigInput): Engine {
  const q = quantizeSync(AutoModelForCausalLM.fromHuggingFace(kjv), qc);
  try {
    return buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 16, maxNumTokens: 64, maxSeqLen: 128 });
  } finally {
    q.close();
  }
}

/** Fake weight addresses by tensor name (1 MiB apart from 2^40): the same name has the same address in every engine. */
const weightAddr = new Map<string, bigint>();
/** A launch environment of distinct fake addresses. */
function fakeEnv(engine: Engine, batchInvariant = false, fusedDecode = true): LaunchEnv {
  const names = engine.tensorNames();
  return fakeLaunchEnv(engine, {
    weight: (n) => {
      if (!names.includes(n)) throw new Error(`no weight ${n}`);
      if (!weightAddr.has(n)) weightAddr.set(n, (1n << 40n) + BigInt(weightAddr.size) * (1n << 20n));
      return weightAddr.get(n)!;
    },
    batchInvariant,
    fusedDecode,
    quantScratch: 17n << 32n,
  });
}

for (
  const [name, qc, kernel, group] of [
    ["W4A16 uint4 g64", { quantAlgo: "W4A16", groupSize: 64 }, "u4", 64],
    ["W8A16 uint8 per-channel", { quantAlgo: "W8A16" }, "u8", 0],
  ] as [string, QuantConfigInput, "u4" | "u8", number][]
) {
  test(`CUDA launch plan, ${name}: quant_gemv for decode steps of 1..8, dequantize + cuBLASLt beyond; addresses, shapes and arities`, () => {
    const engine = cudaEngine(qc);
    const env = fakeEnv(engine, false, false);
    const plan = engine.plan;
    const quantOps = plan.ops.map((op, i) => [op, i] as const).filter(([op]) => op.type === "linear" && op.weightFormat);
    assert.equal(quantOps.length, 6 * 4); // qkv, o, gate_up, down per layer (lm_head tied, excluded)
    const buf = (n: string): bigint => env.arena + BigInt(plan.buffers[n].offset);
    for (const [T, S] of [[1, 1], [3, 3], [8, 8], [12, 12], [20, 1]]) {
      const attention = T === S ? { kind: "decode" as const, numSplits: 2, splitSize: 128 } : { kind: "prefill" as const };
      const launches = planLaunches(env, { numTokens: T, numSeqs: S, numRows: S, attention, sample: true });
      for (const l of launches) if (l.kind === "kernel") assert.equal(l.args.length, kernelSignature(l.kernel).params.length, `${l.kernel} arity`);
      for (const [op, i] of quantOps) {
        if (op.type !== "linear" || !op.weightFormat) continue;
        const f = op.weightFormat;
        const mine = launches.filter((x) => x.op === i);
        const W = env.weight(op.weight), sc = env.weight(f.scales), z = f.zeros ? env.weight(f.zeros) : 0n;
        const g = group || op.inFeatures;
        assert.equal(f.groupSize, g);
        if (T === S && T <= GEMV_MAX_ROWS) {
          assert.equal(mine.length, 1, `op ${i} T=${T}`);
          const l = mine[0] as KernelLaunch;
          const M = T <= 1 ? 1 : T <= 2 ? 2 : T <= 4 ? 4 : 8;
          if (kernel === "u8") {
            // Whole 64-weight superchunks and 16-row tiles: the tensor-core kernel, mode 0.
            assert.equal(l.kernel, "quant_gemv_fused_u8");
            assert.deepEqual(l.args, [buf(op.x), W, sc, z, 0n, buf(op.out), 0n, 0, T, op.outFeatures, op.inFeatures, g, 0]);
            assert.deepEqual(l.grid, [quantGemvGrid(op.outFeatures), 1, 1]);
          } else {
            // Groups of 64 are not whole 128-weight superchunks: the per-warp kernel.
            assert.equal(l.kernel, `quant_gemv_${kernel}_m${M}`);
            assert.deepEqual(l.args, [buf(op.x), W, sc, z, 0n, buf(op.out), T, op.outFeatures, op.inFeatures, g]);
            assert.deepEqual(l.grid, [Math.ceil(op.outFeatures / 8), 1, 1]);
          }
        } else {
          assert.equal(mine.length, 2, `op ${i} T=${T} S=${S}`);
          const [dq, gemm] = mine as [KernelLaunch, GemmLaunch];
          assert.equal(dq.kernel, `quant_dequant_${kernel}_bf16`);
          assert.deepEqual(dq.args, [W, sc, z, env.quantScratch, op.outFeatures, op.inFeatures, g]);
          assert.equal(dq.grid[0] * 256 * 8 >= op.outFeatures * op.inFeatures, true);
          assert.equal(gemm.kind, "gemm");
          assert.deepEqual([gemm.m, gemm.n, gemm.k, gemm.b, gemm.a, gemm.d, gemm.dtype], [
            T,
            op.outFeatures,
            op.inFeatures,
            env.quantScratch,
            buf(op.x),
            buf(op.out),
            "bf16",
          ]);
        }
      }
      // Float linears (the tied lm_head) are untouched: bf16 GEMV/cuBLASLt as before.
      assert.ok(!launches.some((x) => x.kind === "kernel" && x.kernel.startsWith("quant_") && !quantOps.some(([, i]) => i === x.op)));
    }
    engine.dispose();
  });
}

test("CUDA launch plan, batch-invariant quantized engine: a prefill takes dequantize + the pinned cuBLASLt algorithm, decode steps the GEMV", () => {
  const engine = cudaEngine({ quantAlgo: "W4A16", groupSize: 64 });
  const env = fakeEnv(engine, true);
  const i = engine.plan.ops.findIndex((op) => op.type === "linear" && op.weightFormat);
  const pre = planLaunches(env, { numTokens: 5, numSeqs: 1, numRows: 1, attention: { kind: "prefill" }, sample: true }).filter((x) => x.op === i);
  assert.deepEqual(pre.map((x) => (x.kind === "gemm" ? `gemm invariant=${x.invariant}` : x.kernel)), ["quant_dequant_u4_bf16", "gemm invariant=true"]);
  const dec = planLaunches(env, { numTokens: 5, numSeqs: 5, numRows: 5, attention: { kind: "decode", numSplits: 2, splitSize: 128 }, sample: true }).filter((
    x,
  ) => x.op === i);
  assert.deepEqual(dec.map((x) => (x.kind === "gemm" ? "gemm" : x.kernel)), ["quant_gemv_u4_m8"]);
  engine.dispose();
});

for (
  const [name, qc, u] of [
    ["W8A16 uint8 per-channel", { quantAlgo: "W8A16" }, "u8"],
    // kjv-llama's down_proj (320 in-features) takes no group of 128: left in bf16.
    ["W4A16 uint4 g128 + zero points", { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true, excludeModules: ["lm_head", "down_proj"] }, "u4"],
  ] as [string, QuantConfigInput, "u4" | "u8"][]
) {
  test(`fused decode plan, ${name}: quantized linears take the bf16 plan's RMSNorm prologues and residual / SiLU·mul epilogues`, () => {
    const engine = cudaEngine(qc);
    const model = AutoModelForCausalLM.fromHuggingFace(kjv);
    const bf = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 16, maxNumTokens: 64, maxSeqLen: 128 });
    model.close();
    assert.deepEqual(engine.plan.buffers, bf.plan.buffers, "same activation arena");
    const ops = engine.plan.ops;
    let fused = 0;
    for (const T of [1, 3, 8]) {
      const shape = { numTokens: T, numSeqs: T, numRows: T, attention: { kind: "decode" as const, numSplits: 2, splitSize: 128 }, sample: true };
      const q = planLaunches(fakeEnv(engine), shape), b = planLaunches(fakeEnv(bf), shape);
      for (const l of q) if (l.kind === "kernel") assert.equal(l.args.length, kernelSignature(l.kernel).params.length, `${l.kernel} arity`);
      const byOp = (ls: typeof q, i: number): KernelLaunch[] => ls.filter((l): l is KernelLaunch => l.op === i && l.kind === "kernel");
      ops.forEach((op, i) => {
        if (op.type !== "linear" || !op.weightFormat) return;
        const [ql] = byOp(q, i), [bl] = byOp(b, i);
        const f = op.weightFormat, g = f.groupSize || op.inFeatures;
        fused++;
        // The bf16 plan's fused launch of the same op: (x, W, bias, y, normW, eps, m, n, k, mode, ...).
        assert.ok(bl.kernel.startsWith("gemv_fused"), `op ${i}: bf16 ${bl.kernel}`);
        const [bx, , bbias, by, bnorm, beps, bm, bn, bk, bmode] = bl.args;
        const norm = bl.kernel.startsWith("gemv_fused_norm");
        assert.equal(ql.kernel, `quant_gemv_fused${norm ? "_norm" : ""}_${u}`);
        const sc = fakeEnv(engine).weight(f.scales), z = f.zeros ? fakeEnv(engine).weight(f.zeros) : 0n;
        assert.deepEqual(ql.args, [bx, fakeEnv(engine).weight(op.weight), sc, z, bbias, by, bnorm, beps, bm, bn, bk, g, bmode], `op ${i} T=${T}`);
        assert.deepEqual(ql.grid, [quantGemvGrid(op.outFeatures), 1, 1]);
      });
      // Every other launch (norms folded away, adds, attention, the bf16 lm_head) is the bf16 plan's.
      const rest = (ls: typeof q): string[] =>
        ls.filter((l) => !(ops[l.op].type === "linear" && (ops[l.op] as { weightFormat?: unknown }).weightFormat)).map((l) =>
          `${l.op} ${l.kind === "kernel" ? l.kernel : "gemm"}`
        );
      assert.deepEqual(rest(q), rest(b));
    }
    assert.equal(fused, 3 * (u === "u8" ? 4 : 3) * 6, "every quantized linear of the 6 layers, 3 step sizes");
    engine.dispose();
    bf.dispose();
  });
}

test("fused decode plan with programmatic dependent launch: quantPdl flags the quantized GEMVs that follow a waiting kernel and changes nothing else", () => {
  const engine = cudaEngine({ quantAlgo: "W8A16" });
  const strip = (ls: ReturnType<typeof planLaunches>): unknown[] =>
    ls.map((l) => JSON.parse(JSON.stringify(l.kind === "kernel" ? { ...l, pdl: undefined } : l, (_k, v) => (typeof v === "bigint" ? `${v}n` : v))));
  for (const T of [1, 3, 8]) {
    const shape = { numTokens: T, numSeqs: T, numRows: T, attention: { kind: "decode" as const, numSplits: 2, splitSize: 128 }, sample: true };
    const off = planLaunches({ ...fakeEnv(engine), pdl: true, quantPdl: false }, shape);
    const on = planLaunches({ ...fakeEnv(engine), pdl: true, quantPdl: true }, shape);
    assert.deepEqual(strip(on), strip(off), `T=${T}: the same launches apart from the flag`);
    const quant = (ls: typeof on): KernelLaunch[] => ls.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.startsWith("quant_gemv_fused"));
    assert.ok(quant(off).length === 4 * 6 && quant(off).every((l) => !l.pdl), `T=${T}: quantPdl false: no quantized GEMV flagged`);
    // quantPdl: a quantized GEMV takes PDL exactly when the launch before it waits in code too (not after the
    // embedding; after kjv-llama's head-dim-32 attention path, rope_kv_write + paged_attention_decode + its split
    // merge, yes: paged_attention_decode_reduce waits at its entry since session 8), and so does a waiting launch
    // after a quantized GEMV (the next one: o_proj → gate_up → down → the next layer's qkv).
    on.forEach((l, i) => {
      if (l.kind !== "kernel" || i === 0) return;
      const prev = on[i - 1];
      const want = prev.kind === "kernel" && isPdlKernel(prev.kernel, true) && isPdlKernel(l.kernel, true);
      assert.equal(!!l.pdl, want, `T=${T}: launch ${i} ${l.kernel} after ${prev.kind === "kernel" ? prev.kernel : prev.kind}`);
    });
    assert.equal(quant(on).filter((l) => l.pdl).length, 4 * 6 - 1, `T=${T}: o_proj (after the split merge), gate_up, down and the next layer's qkv flagged`);
  }
  engine.dispose();
});

test("fused decode plan with quantTailNorm: o / down write the next norm's x · weight and sums, gate_up / qkv scale by the rms; PDL-capable; off changes nothing", () => {
  const engine = cudaEngine({ quantAlgo: "W8A16" });
  const ops = engine.plan.ops;
  const scratch = 23n << 32n;
  for (const T of [1, 3, 8]) {
    const shape = { numTokens: T, numSeqs: T, numRows: T, attention: { kind: "decode" as const, numSplits: 2, splitSize: 128 }, sample: true };
    const base = planLaunches(fakeEnv(engine), shape);
    assert.deepEqual(planLaunches({ ...fakeEnv(engine), quantTailNorm: false, quantNormScratch: scratch }, shape), base, "off: the same launches");
    const on = planLaunches({ ...fakeEnv(engine), quantTailNorm: true, quantNormScratch: scratch, pdl: true, quantPdl: true }, shape);
    const q = on.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.startsWith("quant_gemv_fused"));
    for (const l of q) assert.equal(l.args.length, kernelSignature(l.kernel).params.length, `${l.kernel} arity`);
    const L = engine.plan.attributes.numLayers;
    const prod = q.filter((l) => l.kernel === "quant_gemv_fused_addnorm_u8"), cons = q.filter((l) => l.kernel === "quant_gemv_fused_rs_u8");
    assert.equal(prod.length, 2 * L - 1, `T=${T}: o_proj of every layer and down_proj of all but the last`);
    assert.equal(cons.length, 2 * L - 1, `T=${T}: gate_up of every layer and qkv of all but the first`);
    for (const p of prod) {
      // (x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode, xw, ssq): the next launch reads xw and ssq.
      const next = on[on.indexOf(p) + 1] as KernelLaunch;
      assert.equal(next.kernel, "quant_gemv_fused_rs_u8", `T=${T}: after op ${p.op}`);
      assert.equal(p.args[12], 1, "residual epilogue");
      assert.equal(p.args[14], scratch);
      assert.equal(next.args[0], p.args[13], "the consumer reads the producer's xw");
      assert.equal(next.args[6], scratch, "the consumer's normW slot: the sums of squares");
      assert.equal(next.args[7], (ops[p.op + 1] as { eps: number }).eps, "the add_rmsnorm's eps");
      assert.ok(next.pdl, `T=${T}: the consumer takes PDL after its producer`);
    }
  }
  engine.dispose();
});
