// The CUDA launch plan of FP8 engines (issue 14), checked without a GPU: every FP8 linear of a bf16
// kjv-llama engine runs the tensor-core GEMV (steps of 1..8 rows; with batch invariance only pure decode
// steps) or fp8_quantize + the cuBLASLt FP8 GEMM beyond — with cuBLASLt's scalar scales for per-tensor
// FP8 (fused q/k/v and gate/up share one weight scale) and the fp8_scale epilogue for per-channel weights
// with per-token activations — with the right addresses, scales and arities. The arithmetic is checked on
// a GPU by tests/gpu/fp8_cuda.test.ts.
import { fp8ScratchLayout } from "../lib/backends/cuda/fp8_launch.ts";
import { type GemmLaunch, GEMV_MAX_ROWS, type KernelLaunch, kernelSignature, type LaunchEnv, planLaunches } from "../lib/backends/cuda/launch_plan.ts";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { UnsupportedError } from "../lib/util/errors.ts";
import { randomModel } from "./cuda_fake_device.ts";
import { fakeLaunchEnv } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const kjv = new URL("../models/kjv-llama/", import.meta.url).pathname;
const engines = new Map<string, Engine>();
function cudaEngine(algo: "FP8" | "FP8_PER_CHANNEL_PER_TOKEN"): Engine {
  let e = engines.get(algo);
  if (!e) {
    const q = quantizeSync(AutoModelForCausalLM.fromHuggingFace(kjv), { quantAlgo: algo }, { maxCalibrationTokens: 64 });
    e = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 16, maxNumTokens: 64, maxSeqLen: 128 });
    q.close();
    engines.set(algo, e);
  }
  return e;
}

/** A launch environment of distinct fake addresses (weights 1 MiB apart from 2^40). */
function fakeEnv(engine: Engine, batchInvariant: boolean, fusedDecode = false): LaunchEnv {
  const names = engine.tensorNames();
  return fakeLaunchEnv(engine, {
    weight: (n) => {
      const i = names.indexOf(n);
      if (i < 0) throw new Error(`no weight ${n}`);
      return (1n << 40n) + BigInt(i) * (1n << 20n);
    },
    batchInvariant,
    fusedDecode,
    fp8Scratch: 17n << 32n,
  });
}

for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
  test(
    `CUDA launch plan, ${algo}: fp8_gemv for steps of 1..8 rows, fp8_quantize + cuBLASLt FP8 beyond (${
      algo === "FP8" ? "scalar scales in cuBLASLt" : "fp8_scale epilogue"
    }); addresses, scales and arities`,
    () => {
      const engine = cudaEngine(algo);
      const plan = engine.plan;
      const fp8Ops = plan.ops.map((op, i) => [op, i] as const).filter(([op]) => op.type === "linear" && op.weightFormat?.format === "fp8_e4m3");
      assert.equal(fp8Ops.length, 6 * 4); // qkv, o, gate_up, down per layer (lm_head tied, excluded)
      const layout = fp8ScratchLayout(plan)!;
      assert.equal(layout.scalesOffset, Math.ceil((64 * 320) / 256) * 256, "64 rows of the widest input (down_proj, 320)");
      for (const [batchInvariant, fused] of [[false, false], [true, false], [false, true]]) {
        const env = fakeEnv(engine, batchInvariant, fused);
        const buf = (n: string): bigint => env.arena + BigInt(plan.buffers[n].offset);
        const xq = env.fp8Scratch!, rowScales = env.fp8Scratch! + BigInt(layout.scalesOffset);
        for (const [T, S] of [[1, 1], [3, 3], [8, 8], [6, 1], [12, 12], [20, 1]]) {
          const attention = T === S ? { kind: "decode" as const, numSplits: 2, splitSize: 128 } : { kind: "prefill" as const };
          const launches = planLaunches(env, { numTokens: T, numSeqs: S, numRows: S, attention, sample: true });
          for (const l of launches) if (l.kind === "kernel") assert.equal(l.args.length, kernelSignature(l.kernel).params.length, `${l.kernel} arity`);
          for (const [op, i] of fp8Ops) {
            if (op.type !== "linear") continue;
            const f = op.weightFormat!;
            assert.equal(f.weightScale, algo === "FP8" ? "per_tensor" : "per_channel", `${op.weight}: fused parts share one scale`);
            const actScale = algo === "FP8" ? f.activationScale! : 0;
            if (algo === "FP8") assert.ok(actScale > 0);
            const mine = launches.filter((x) => x.op === i);
            const W = env.weight(op.weight), sc = env.weight(f.scales);
            if (T <= GEMV_MAX_ROWS && (!batchInvariant || T === S)) {
              assert.equal(mine.length, 1, `op ${i} T=${T}`);
              const l = mine[0] as KernelLaunch;
              if (fused && T === S) {
                // Fused decode (tests/quant_fp8_cuda_fused.test.ts runs it): the same weight, scales and shape.
                assert.ok(l.kernel.startsWith("fp8_gemv_fused"), `op ${i} T=${T}: ${l.kernel}`);
                assert.deepEqual([l.args[1], l.args[2], ...l.args.slice(7, 11)], [W, sc, T, op.outFeatures, op.inFeatures, actScale]);
                assert.deepEqual([l.grid, l.block], [[op.outFeatures / 16, 1, 1], 256]);
                continue;
              }
              assert.equal(l.kernel, "fp8_gemv_bf16");
              assert.deepEqual(l.args, [buf(op.x), W, sc, 0n, buf(op.out), T, op.outFeatures, op.inFeatures, actScale]);
              assert.deepEqual([l.grid, l.block], [[Math.ceil(op.outFeatures / 16), 1, 1], 256]);
              continue;
            }
            assert.equal(mine.length, algo === "FP8" ? 2 : 3, `op ${i} T=${T} S=${S}`);
            const [qz, gemm, scale] = mine as [KernelLaunch, GemmLaunch, KernelLaunch | undefined];
            assert.equal(qz.kernel, "fp8_quantize_bf16");
            assert.deepEqual(qz.args, [buf(op.x), xq, rowScales, T, op.inFeatures, actScale]);
            assert.deepEqual(qz.grid, [T, 1, 1]);
            assert.equal(gemm.kind, "gemm");
            assert.deepEqual([gemm.m, gemm.n, gemm.k, gemm.a, gemm.b, gemm.d, gemm.dtype, gemm.outDtype], [
              T,
              op.outFeatures,
              op.inFeatures,
              xq,
              W,
              buf(op.out),
              "fp8e4m3",
              "bf16",
            ]);
            assert.equal(gemm.invariant, batchInvariant && !(T === S && T > GEMV_MAX_ROWS));
            if (algo === "FP8") {
              assert.deepEqual(
                [gemm.aScale, gemm.bScale],
                [rowScales, sc],
                "cuBLASLt scales: the activation scale the quantize kernel wrote, the weight scale",
              );
            } else {
              assert.deepEqual([gemm.aScale, gemm.bScale], [undefined, undefined]);
              assert.equal(scale!.kernel, "fp8_scale_bf16");
              assert.deepEqual(scale!.args, [buf(op.out), rowScales, sc, 0n, T, op.outFeatures]);
              assert.deepEqual(scale!.grid, [Math.ceil(op.outFeatures / 2048), T, 1]);
            }
          }
          // Float linears (the tied lm_head) launch no FP8 kernel.
          assert.ok(!launches.some((x) => x.kind === "kernel" && x.kernel.startsWith("fp8_") && !fp8Ops.some(([, i]) => i === x.op)));
        }
      }
    },
  );
}

test("FP8 quantize: fused q/k/v and gate/up parts share one per-tensor weight scale (the amax of all parts); per-channel keeps per-row scales", () => {
  for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
    const engine = cudaEngine(algo);
    for (const op of engine.plan.ops) {
      if (op.type !== "linear" || !op.weightFormat) continue;
      const s = new Float32Array(engine.readTensor(op.weightFormat.scales).slice().buffer);
      assert.equal(s.length, op.outFeatures);
      const distinct = new Set(s).size;
      if (algo === "FP8") assert.equal(distinct, 1, `${op.weight}: one scale`);
      else assert.ok(distinct > 1, `${op.weight}: per-row scales`);
    }
  }
});

test("FP8 for the CUDA backend: linear dims that are not multiples of 16 are refused at build, naming the weight", () => {
  const model = randomModel(
    {
      model_type: "llama",
      hidden_size: 64,
      intermediate_size: 40,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      num_hidden_layers: 1,
      vocab_size: 64,
    },
    3,
  );
  const q = quantizeSync(model, { quantAlgo: "FP8_PER_CHANNEL_PER_TOKEN" });
  assert.throws(
    () => buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 2, maxNumTokens: 16, maxSeqLen: 32 }),
    (e: unknown) => e instanceof UnsupportedError && /multiples of 16/.test(e.message) && /gate_up|down/.test(e.message),
  );
  buildSync(q, { backend: "cpu", maxBatchSize: 2, maxNumTokens: 16, maxSeqLen: 32 }).dispose(); // the CPU takes any shape
});

test("FP8 GEMM launches carry cuBLASLt fast accumulation only when LaunchEnv.fp8FastAccum is set (CudaSessionOptions.fp8FastAccum)", () => {
  for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
    const engine = cudaEngine(algo);
    for (const fast of [false, true]) {
      const env = { ...fakeEnv(engine, false), ...(fast ? { fp8FastAccum: true } : {}) };
      const launches = planLaunches(env, { numTokens: 20, numSeqs: 1, numRows: 1, attention: { kind: "prefill" }, sample: true });
      const gemms = launches.filter((l): l is GemmLaunch => l.kind === "gemm");
      const fp8 = gemms.filter((g) => g.dtype === "fp8e4m3");
      assert.equal(fp8.length, 6 * 4);
      for (const g of fp8) assert.equal(g.fastAccum ?? false, fast);
      for (const g of gemms) if (g.dtype !== "fp8e4m3") assert.equal(g.fastAccum, undefined, "bf16 GEMMs never ask for it");
    }
  }
});

test("LaunchEnv.fp8Pdl: fused FP8 decode steps launch fp8_gemv_fused*_pdl with programmatic dependent launch after a PDL kernel (LaunchEnv.pdl)", () => {
  for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
    const engine = cudaEngine(algo);
    const env = { ...fakeEnv(engine, false, true), fp8Pdl: true };
    const plainNames = planLaunches({ ...env, fp8Pdl: false, pdl: true }, {
      numTokens: 1,
      numSeqs: 1,
      numRows: 1,
      attention: { kind: "decode", numSplits: 1, splitSize: 128 },
      sample: true,
    })
      .filter((l): l is KernelLaunch => l.kind === "kernel");
    assert.ok(plainNames.every((l) => !l.kernel.includes("_pdl") && !(l.kernel.startsWith("fp8_") && l.pdl)), "fp8Pdl off: the plain GEMVs, no PDL");
    const shape = { numTokens: 1, numSeqs: 1, numRows: 1, attention: { kind: "decode" as const, numSplits: 1, splitSize: 128 }, sample: true };
    const off = planLaunches(env, shape).filter((l): l is KernelLaunch => l.kind === "kernel");
    const on = planLaunches({ ...env, pdl: true }, shape).filter((l): l is KernelLaunch => l.kind === "kernel");
    assert.deepEqual(on.map((l) => l.kernel), off.map((l) => l.kernel), "same launches");
    assert.deepEqual(on.map((l) => l.kernel.replace("_pdl", "")), plainNames.map((l) => l.kernel), "the _pdl entry points in place of the plain ones");
    const fp8 = on.map((l, i) => [l, i] as const).filter(([l]) => l.kernel.startsWith("fp8_gemv_fused"));
    for (const [l] of fp8) assert.ok(l.kernel.endsWith("_pdl_bf16"), l.kernel);
    assert.equal(fp8.length, 6 * 4);
    for (const [l, i] of fp8) {
      const prev = on[i - 1];
      const prevPdl = prev.kernel.startsWith("fp8_gemv_fused") || prev.kernel.startsWith("gemv_fused") || prev.kernel.startsWith("decode_attention");
      assert.equal(!!l.pdl, prevPdl, `${l.kernel} after ${prev.kernel}`);
    }
    // kjv-llama (head dim 32: no decode_attention fusion): gate_up and down after an FP8 GEMV, qkv after the last layer's down.
    assert.equal(fp8.filter(([l]) => l.pdl).length, 6 * 3 - 1, "FP8 GEMVs that overlap their predecessor");
  }
});
