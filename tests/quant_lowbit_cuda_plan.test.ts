// W8A8_SQ_PER_CHANNEL ("int8"), W4A8_AWQ ("int4") and NVFP4 on the CUDA launch plan (issue 14 item 3),
// checked without a GPU on the fake device (stand-ins: tests/cuda_fake_lowbit.ts, which keep
// kernels/lowbit.cu's roundings). One linear at a time: the plan of every row count (the decode GEMV for
// 1..8 rows, activation quantization + weight dequantization + cuBLASLt with alpha beyond, the fp32 logits)
// computes what the CPU backend's bit-exact emulation (lib/backends/cpu/lowbit_linear.ts) computes from the
// same bf16 inputs, to the bf16 store (int8 / NVFP4: exact operands) or the bf16 rounding of W4A8's
// dequantized q·s (prefill). Whole engines: a small random Llama quantized with each algorithm runs prefill
// and decode steps of 1..8 sequences, fused and unfused (same bits), against the float32 CPU session.
// The kernels themselves: tests/gpu/lowbit_cuda.test.ts on a GPU.
import { loadLowbitWeight, lowbitLinear } from "../lib/backends/cpu/lowbit_linear.ts";
import type { KernelLaunch, Launch, LaunchEnv } from "../lib/backends/cuda/launch_types.ts";
import { isPdlKernel, kernelSignature } from "../lib/backends/cuda/kernel_signatures.ts";
import { planLaunches } from "../lib/backends/cuda/launch_plan.ts";
import { lowbitScratchLayout, planLowbitLinear } from "../lib/backends/cuda/lowbit_launch.ts";
import type { Op } from "../lib/ir/network.ts";
import type { EnginePlan } from "../lib/ir/plan.ts";
import { quantizeRtn } from "../lib/quantization/algorithms.ts";
import { lowbitEngineRecord } from "../lib/quantization/lowbit_engine.ts";
import { quantizeNvfp4, toW4A8 } from "../lib/quantization/nvfp4.ts";
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { quantizeInt8PerChannel } from "../lib/quantization/smoothquant.ts";
import { bf16ToF32, f32ToBf16 } from "../lib/util/dtype.ts";
import { FakeMemory, runLaunches } from "./cuda_fake_device.ts";
import { fakeLaunchEnv, quantEngines, quantTestLlama, relL2, runFusedSchedule, sameAsUnfused } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";
import { rng } from "./quant_lowbit_shared.ts";

type Fmt = "int8" | "int4" | "nvfp4";
const bf = (v: ArrayLike<number>): Float32Array => bf16ToF32(f32ToBf16(Float32Array.from(v)));

/** One linear [N, K] of `fmt` with a bias (int8: and a pre-quant scale) on a fake device, and its CPU weight. */
function setup(fmt: Fmt, N: number, K: number, seed: number) {
  const r = rng(seed);
  const W = Float64Array.from({ length: N * K }, () => r() * (1 + (r() > 0.45 ? 3 : 0)));
  const t = fmt === "int8"
    ? quantizeInt8PerChannel(W, N, K, Float32Array.from({ length: K }, () => 0.5 + r() + 0.5))
    : fmt === "int4"
    ? toW4A8(quantizeRtn(W, N, K, { bits: 4, groupSize: 32, hasZeroPoint: false }), 2.5)
    : quantizeNvfp4(W, N, K, 2.5);
  const rec = lowbitEngineRecord("w", t);
  const tensors = new Map(rec.tensors.map((x) => [x.name, x]));
  tensors.set("b", { name: "b", dtype: "float32", shape: [N], data: new Uint8Array(bf(Array.from({ length: N }, () => r() * 0.2)).buffer) });
  const op: Extract<Op, { type: "linear" }> = {
    type: "linear",
    x: "x",
    out: "y",
    weight: "w",
    bias: "b",
    inFeatures: K,
    outFeatures: N,
    weightFormat: rec.weightFormat,
  };
  const reader = {
    readTensor: (n: string) => tensors.get(n)!.data,
    readFloat32: (n: string) => new Float32Array(tensors.get(n)!.data.slice().buffer),
  };
  const cpu = loadLowbitWeight(op, reader).weight;
  const mem = new FakeMemory(), addr = new Map<string, bigint>();
  for (const [name, x] of tensors) {
    // As the CUDA session uploads them: the quantized tensors raw, the bias in bf16.
    const bytes = name === "b" ? new Uint8Array(f32ToBf16(new Float32Array(x.data.slice().buffer)).buffer) : x.data;
    const p = mem.alloc(bytes.length);
    mem.bytes(p, bytes.length).set(bytes);
    addr.set(name, p);
  }
  const maxRows = 16;
  const plan = { ops: [op], maxTokens: maxRows, maxSeqs: maxRows } as unknown as EnginePlan;
  const env = {
    plan,
    elem: "bf16",
    weight: (n: string) => addr.get(n)!,
    logits: mem.alloc(maxRows * N * 4),
    quantScratch: mem.alloc(N * K * 2),
    lowbitScratch: mem.alloc(lowbitScratchLayout(plan)!.bytes),
  } as unknown as LaunchEnv;
  const x = mem.alloc(maxRows * K * 2), y = mem.alloc(maxRows * N * 2);
  const bias = new Float32Array(tensors.get("b")!.data.slice().buffer);
  return { op, cpu, mem, env, x, y, bias };
}

for (const fmt of ["int8", "int4", "nvfp4"] as const) {
  test(`CUDA plan of one ${fmt} linear on the fake device: GEMV (1..8 rows), dequantize + cuBLASLt (12 rows, fp32 logits) vs the CPU emulation`, () => {
    const N = 48, K = 128;
    const { op, cpu, mem, env, x, y, bias } = setup(fmt, N, K, 5);
    const r = rng(9);
    for (const [rows, logits] of [[1, false], [2, false], [3, false], [8, false], [12, false], [5, true]] as [number, boolean][]) {
      // Activations with an outlier channel (SmoothQuant's case) and values past the W4A8 / NVFP4 static scale (saturation).
      const xv = bf(Array.from({ length: rows * K }, (_, i) => r() * (i % K === 7 ? 40 : 3)));
      mem.u16(x, xv.length).set(f32ToBf16(xv));
      const launches: Launch[] = [];
      planLowbitLinear({ op, i: 0, rows, isLogits: logits, env, decodeStep: true, buf: (n) => (n === "x" ? x : y) }, launches);
      for (const l of launches) if (l.kind === "kernel") assert.equal(l.args.length, kernelSignature(l.kernel).params.length, `${l.kernel} arity`);
      const names = launches.map((l) => (l.kind === "gemm" ? `gemm${l.alpha !== undefined ? "+alpha" : ""}` : (l as KernelLaunch).kernel));
      const gemv = rows <= 8 && !logits;
      const act = fmt === "int8" ? "lowbit_act_int8_bf16" : fmt === "int4" ? "lowbit_act_e4m3_bf16" : "lowbit_act_nvfp4_bf16";
      const want = gemv
        ? [act, `lowbit_gemv_${fmt}_bf16_m${rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : 8}`]
        : [act, `lowbit_dequant_${fmt}_bf16`, fmt === "int8" ? "gemm" : "gemm+alpha", ...(fmt === "int8" ? [logits ? "fp8_scale_f32" : "fp8_scale_bf16"] : [])];
      assert.deepEqual(names, want, `${rows} rows${logits ? " (logits)" : ""}`);
      runLaunches(mem, launches, env);
      const got = logits ? mem.f32(env.logits, rows * N).slice() : bf16ToF32(mem.u16(y, rows * N).slice());
      const ref = new Float32Array(rows * N);
      lowbitLinear(xv, cpu, bias, rows, N, K, ref);
      const what = `${fmt} ${rows} rows${logits ? " logits" : ""}`;
      if (fmt === "int4" && !gemv) {
        // W4A8's dequantized q·s is rounded to bf16 (8 significant bits) before cuBLASLt.
        const rel = relL2(got, ref);
        assert.ok(rel < 4e-3, `${what}: rel L2 ${rel.toExponential(2)}`);
      } else {
        // Exact operands: the same sums up to fp32 rounding, then the bf16 store (2^-8 relative) or f32 logits.
        // SmoothQuant's GEMM path stores the unscaled integer sums in bf16 and rounds again after the scales
        // (fp8_scale_bf16) and the bias: two bf16 roundings, relative to the value before the bias.
        const twice = fmt === "int8" && !gemv && !logits;
        const tol = logits ? 2 ** -20 : twice ? 2 ** -7 : 2 ** -8;
        for (let i = 0; i < ref.length; i++) {
          const mag = Math.abs(ref[i]) + (twice ? Math.abs(bias[i % N]) : 0);
          if (!(Math.abs(got[i] - ref[i]) <= tol * mag + 1e-6)) assert.fail(`${what}: output ${i}: ${got[i]} vs CPU ${ref[i]}`);
        }
      }
    }
  });
}

const RAW = quantTestLlama(96);
const CALIBRATION = [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % (RAW.vocab_size as number))];
/**
 * bf16 activations on the fake device vs the float32 CPU session: the activation quantizers' rounding
 * boundaries (int8 steps of amax/127, e4m3's 3 mantissa bits, e2m1's 1 bit) move a value by a whole step
 * when bf16 rounding puts it across one. Measured worst rel L2 on this model (printed by the test): SQ 2.6e-2,
 * W4A8 7.2e-2, NVFP4 0.24 (0.27 with an NVFP4 lm_head): e2m1's steps are a third of a value. The per-linear
 * tests above are the tight check (same bf16 inputs on both sides).
 */
const TOL: Record<string, number> = { W8A8_SQ_PER_CHANNEL: 0.05, W4A8_AWQ: 0.12, NVFP4: 0.35 };

for (
  const [name, qc] of [
    ["W8A8_SQ_PER_CHANNEL", { quantAlgo: "W8A8_SQ_PER_CHANNEL" }],
    ["W4A8_AWQ g64", { quantAlgo: "W4A8_AWQ", groupSize: 64 }],
    ["NVFP4", { quantAlgo: "NVFP4" }],
    ["NVFP4 with an NVFP4 lm_head", { quantAlgo: "NVFP4", excludeModules: [] }],
  ] as [string, QuantConfigInput][]
) {
  test(`${name} engine on the fake device: fused decode plan = unfused plan (bits), both ≈ the float32 CPU session`, () => {
    const { bf16, f32 } = quantEngines(RAW, 41, qc, 0.1, { calibration: CALIBRATION });
    const head = bf16.plan.ops.find((o) => o.type === "linear" && o.out === bf16.plan.attributes.logits);
    assert.equal(head?.type === "linear" && head.weightFormat !== undefined, name.includes("lm_head"), "lm_head quantized as configured");
    let worst = 0;
    const { kernels, prefillKernels } = runFusedSchedule(bf16, f32, {
      unfused: sameAsUnfused,
      cpu: ({ what, got, want }) => {
        const rel = relL2(got.logits, want.logits);
        worst = Math.max(worst, rel);
        assert.ok(rel < TOL[qc.quantAlgo!], `${what}: logits differ from the CPU session's (rel L2 ${rel.toExponential(2)})`);
      },
      label: (l) => l.kernel,
      // bf16 vs float32 activations may sample apart: both follow the CPU session.
      next: (s, r) => s.want.sampledIds[r],
    });
    console.log(`${name}: worst rel L2 of the logits vs the CPU session ${worst.toExponential(2)}`);
    const fmt = qc.quantAlgo === "W8A8_SQ_PER_CHANNEL" ? "int8" : qc.quantAlgo === "W4A8_AWQ" ? "int4" : "nvfp4";
    assert.ok([...kernels].some((k) => k.startsWith(`lowbit_gemv_${fmt}_bf16_m`)), [...kernels].join(" "));
    assert.ok(prefillKernels.has(`lowbit_dequant_${fmt}_bf16`), [...prefillKernels].join(" "));
    bf16.dispose();
    f32.dispose();
  });
}

test("fused decode plan with PDL: each lowbit linear is lowbit_act_* then lowbit_gemv_*, the GEMV flagged (it waits in code after its first weight loads), arities match", () => {
  const { bf16, f32 } = quantEngines(RAW, 41, { quantAlgo: "NVFP4" }, 0.1, { calibration: CALIBRATION });
  const names = bf16.tensorNames();
  const env = fakeLaunchEnv(bf16, {
    weight: (n) => (1n << 40n) + BigInt(names.indexOf(n)) * (1n << 20n),
    batchInvariant: false,
    fusedDecode: true,
    pdl: true,
    quantScratch: 17n << 32n,
    lowbitScratch: 19n << 32n,
    decodeCounters: 21n << 32n,
  });
  for (const T of [1, 3, 8]) {
    const shape = { numTokens: T, numSeqs: T, numRows: T, attention: { kind: "decode" as const, numSplits: 2, splitSize: 128 }, sample: true };
    const ls = planLaunches(env, shape);
    let pairs = 0;
    ls.forEach((l, i) => {
      if (l.kind !== "kernel") return;
      assert.equal(l.args.length, kernelSignature(l.kernel).params.length, `${l.kernel} arity`);
      const prev = ls[i - 1];
      // PDL exactly when this and the previous launch both wait in code.
      const want = prev?.kind === "kernel" && isPdlKernel(prev.kernel) && isPdlKernel(l.kernel);
      assert.equal(!!l.pdl, want, `T=${T}: launch ${i} ${l.kernel} after ${prev?.kind === "kernel" ? prev.kernel : prev?.kind}`);
      if (l.kernel.startsWith("lowbit_gemv_nvfp4_bf16_m")) {
        pairs++;
        assert.ok(
          prev?.kind === "kernel" && prev.kernel === "lowbit_act_nvfp4_bf16" && prev.args[5] === 1,
          "the act kernel, in the GEMV's order, right before",
        );
        assert.ok(l.pdl, "the GEMV takes PDL after its act kernel");
      }
    });
    assert.equal(pairs, 4 * 2, `T=${T}: qkv, o, gate_up, down of 2 layers`);
  }
  bf16.dispose();
  f32.dispose();
});
