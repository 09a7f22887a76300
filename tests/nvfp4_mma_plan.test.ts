// CudaFlags.nvfp4Mma without a GPU: the tiled device layout (lib/backends/cuda/nvfp4_tiles.ts) moves every code and
// block scale exactly once, and one NVFP4 linear planned with LaunchEnv.nvfp4Mma on the fake device (stand-ins of
// kernels/nvfp4_mma.cu in tests/cuda_fake_lowbit.ts, reading the tiled layout) computes what the CPU's lowbitLinear
// computes from the same bf16 inputs: the decode GEMV (nvfp4_act_mma + nvfp4_gemv_mma) for 1..8 rows, and the
// dequantize-the-tiles + cuBLASLt path beyond (and for the fp32 logits). The kernels themselves:
// tests/gpu/nvfp4_mma.test.ts; the kernel's arithmetic (prmt lookups, the mma fragments): tools/cuda-kernel-check/nvfp4_mma_emu.ts.
import { loadLowbitWeight, lowbitLinear } from "../lib/backends/cpu/lowbit_linear.ts";
import type { KernelLaunch, Launch, LaunchEnv } from "../lib/backends/cuda/launch_types.ts";
import { kernelSignature } from "../lib/backends/cuda/kernel_signatures.ts";
import { lowbitScratchLayout, planLowbitLinear } from "../lib/backends/cuda/lowbit_launch.ts";
import { nvfp4Tiles, nvfp4TilesFit } from "../lib/backends/cuda/nvfp4_tiles.ts";
import type { Op } from "../lib/ir/network.ts";
import type { EnginePlan } from "../lib/ir/plan.ts";
import { lowbitEngineRecord } from "../lib/quantization/lowbit_engine.ts";
import { quantizeNvfp4 } from "../lib/quantization/nvfp4.ts";
import { bf16ToF32, f32ToBf16 } from "../lib/util/dtype.ts";
import { FakeMemory, runLaunches } from "./cuda_fake_device.ts";
import { quantEngines, quantTestLlama, relL2, runFusedSchedule, sameAsUnfused } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";
import { rng } from "./quant_lowbit_shared.ts";

const bf = (v: ArrayLike<number>): Float32Array => bf16ToF32(f32ToBf16(Float32Array.from(v)));

test("nvfp4Tiles: every code nibble and block scale lands exactly once, where the kernels read it", () => {
  const N = 32, K = 128;
  const packed = Uint8Array.from({ length: (N * K) / 2 }, (_, i) => (i * 37 + 11) & 255);
  const scales = Uint8Array.from({ length: (N * K) / 16 }, (_, i) => (i * 13 + 1) & 127);
  const t = nvfp4Tiles(packed, scales, N, K);
  assert.equal(t.codes.length, packed.length);
  assert.equal(t.scales.length, scales.length);
  for (let j = 0; j < N; j++) {
    for (let i = 0; i < K; i++) {
      // Row tile j / 16, k tile i / 64; lane 4g + t with g = j % 8, t = (i % 16) / 4; word b = (i % 64) / 16;
      // nibble (i % 4) for rows g, 4 + (i % 4) for rows g + 8.
      const tile = (j >> 4) * (K / 64) + (i >> 6), lane = 4 * (j & 7) + ((i >> 2) & 3), b = (i >> 4) & 3, hi = (j & 15) >= 8 ? 1 : 0;
      const word = new DataView(t.codes.buffer).getUint32(tile * 512 + lane * 16 + b * 4, true);
      const got = (word >>> (4 * (4 * hi + (i & 3)))) & 15, want = (packed[j * (K / 2) + (i >> 1)] >> ((i & 1) * 4)) & 15;
      if (got !== want) assert.fail(`code (${j}, ${i}): ${got} vs ${want}`);
      if (i % 16 === 0) assert.equal(t.scales[tile * 64 + (j & 7) * 8 + 4 * hi + b], scales[j * (K / 16) + (i >> 4)], `scale (${j}, ${i / 16})`);
    }
  }
  assert.ok(nvfp4TilesFit(16, 64) && !nvfp4TilesFit(8, 64) && !nvfp4TilesFit(16, 32));
  assert.throws(() => nvfp4Tiles(packed, scales, 24, K));
});

test("CUDA plan of one NVFP4 linear with nvfp4Mma on the fake device: GEMV (1..8 rows), tiled dequantize + cuBLASLt (12 rows, logits) vs the CPU", () => {
  const N = 48, K = 192;
  const r = rng(5);
  const W = Float64Array.from({ length: N * K }, () => r() * (1 + (r() > 0.45 ? 3 : 0)));
  const rec = lowbitEngineRecord("w", quantizeNvfp4(W, N, K, 2.5));
  const tensors = new Map(rec.tensors.map((x) => [x.name, x.data]));
  const biasF = bf(Array.from({ length: N }, () => r() * 0.2));
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
  const cpu = loadLowbitWeight(op, { readTensor: (n) => tensors.get(n)!, readFloat32: (n) => new Float32Array(tensors.get(n)!.slice().buffer) }).weight;
  const mem = new FakeMemory(), addr = new Map<string, bigint>();
  const tiles = nvfp4Tiles(tensors.get("w")!, tensors.get("w.scales")!, N, K);
  // As the CUDA session uploads them with nvfp4Mma: codes and block scales tiled, the bias in bf16.
  for (const [name, bytes] of [["w", tiles.codes], ["w.scales", tiles.scales], ["b", new Uint8Array(f32ToBf16(biasF).buffer)]] as const) {
    const p = mem.alloc(bytes.length);
    mem.bytes(p, bytes.length).set(bytes);
    addr.set(name, p);
  }
  const maxRows = 16;
  const plan = { ops: [op], maxTokens: maxRows, maxSeqs: maxRows } as unknown as EnginePlan;
  const env = {
    plan,
    elem: "bf16",
    nvfp4Mma: true,
    weight: (n: string) => addr.get(n)!,
    logits: mem.alloc(maxRows * N * 4),
    quantScratch: mem.alloc(N * K * 2),
    lowbitScratch: mem.alloc(lowbitScratchLayout(plan)!.bytes),
  } as unknown as LaunchEnv;
  const x = mem.alloc(maxRows * K * 2), y = mem.alloc(maxRows * N * 2);
  // nvfp4GemvK32: one row on nvfp4_gemv_k32x (batchInvariant too: the same bits as nvfp4_gemv_mma); more rows keep nvfp4_gemv_mma.
  // The logits' one row not with batchInvariant: 2..8 logits rows take the GEMM path, so one row does too (its bits).
  const k32 = { ...env, nvfp4GemvK32: true } as LaunchEnv, k32Inv = { ...env, nvfp4GemvK32: true, batchInvariant: true } as LaunchEnv;
  const cases: [number, boolean, LaunchEnv][] = [
    [1, false, env],
    [2, false, env],
    [3, false, env],
    [8, false, env],
    [12, false, env],
    [5, true, env],
    [1, false, k32],
    [3, false, k32],
    [1, false, k32Inv],
    [1, true, k32],
    [1, true, k32Inv],
  ];
  for (const [rows, logits, e] of cases) {
    const xv = bf(Array.from({ length: rows * K }, (_, i) => r() * (i % K === 7 ? 40 : 3)));
    mem.u16(x, xv.length).set(f32ToBf16(xv));
    const launches: Launch[] = [];
    planLowbitLinear({ op, i: 0, rows, isLogits: logits, env: e, decodeStep: true, buf: (n) => (n === "x" ? x : y) }, launches);
    for (const l of launches) if (l.kind === "kernel") assert.equal(l.args.length, kernelSignature(l.kernel).params.length, `${l.kernel} arity`);
    const names = launches.map((l) => (l.kind === "gemm" ? `gemm${l.alpha !== undefined ? "+alpha" : ""}` : (l as KernelLaunch).kernel));
    const gemv = rows <= 8 && !logits;
    // nvfp4GemvK32 at one row: the act quantization inside the GEMV (nvfp4_gemv_k32x_act*), an NVFP4 lm_head's logits too.
    const want = logits && e === k32
      ? ["nvfp4_gemv_k32x_act_logits_bf16_m1"]
      : gemv && (e === k32 || e === k32Inv) && rows === 1
      ? ["nvfp4_gemv_k32x_act_bf16_m1"]
      : gemv
      ? ["nvfp4_act_mma_bf16", `nvfp4_gemv_mma_bf16_m${rows === 1 ? 1 : 8}`]
      : ["lowbit_act_nvfp4_bf16", "nvfp4_dequant_mma_bf16", "gemm+alpha"];
    assert.deepEqual(names, want, `${rows} rows${logits ? " (logits)" : ""}`);
    runLaunches(mem, launches, e);
    const got = logits ? mem.f32(env.logits, rows * N).slice() : bf16ToF32(mem.u16(y, rows * N).slice());
    const ref = new Float32Array(rows * N);
    lowbitLinear(xv, cpu, biasF, rows, N, K, ref);
    const tol = logits ? (e === k32 ? 2 ** -14 : 2 ** -20) : 2 ** -8;
    for (let i = 0; i < ref.length; i++) {
      if (!(Math.abs(got[i] - ref[i]) <= tol * Math.abs(ref[i]) + 1e-6)) {
        assert.fail(`${rows} rows${logits ? " logits" : ""}: output ${i}: ${got[i]} vs CPU ${ref[i]}`);
      }
    }
  }
});

test("NVFP4 engine on the fake device with nvfp4Mma (fused decode) = the lowbit.cu path (unfused, no nvfp4Mma), bit for bit; producers write the codes", () => {
  const raw = quantTestLlama(96);
  const calibration = [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % 96)];
  const { bf16, f32 } = quantEngines(raw, 41, { quantAlgo: "NVFP4", excludeModules: [] }, 0.1, { calibration });
  const { kernels, prefillKernels } = runFusedSchedule(bf16, f32, {
    unfused: sameAsUnfused,
    cpu: ({ what, got, want }) => assert.ok(relL2(got.logits, want.logits) < 0.35, `${what}: logits far from the CPU session's`),
    label: (l) => l.kernel,
    next: (s, r) => s.want.sampledIds[r],
    fusedOptions: { nvfp4Mma: true },
  });
  // Few row tiles (at most one block per SM of the fake device's 132): the 16-warp GEMV.
  for (const k of ["nvfp4_gemv_mma_w16_bf16_m1", "nvfp4_gemv_mma_w16_bf16_m8", "nvfp4_rmsnorm_act_bf16", "nvfp4_silu_mul_act_bf16", "nvfp4_act_mma_bf16"]) {
    assert.ok(kernels.has(k), `${k} in the fused decode steps: ${[...kernels].join(" ")}`);
  }
  assert.ok(![...kernels].some((k) => k.startsWith("lowbit_gemv_nvfp4")), "no lowbit.cu GEMV with nvfp4Mma");
  assert.ok(prefillKernels.has("nvfp4_dequant_mma_bf16"), [...prefillKernels].join(" "));
  bf16.dispose();
  f32.dispose();
});

test("NVFP4 engine on the fake device with the session-12 defaults (nvfp4GemvK32, nvfp4NormFast): one-token steps on nvfp4_gemv_k32x (the lm_head too) = the lowbit.cu path", () => {
  const raw = quantTestLlama(96);
  const calibration = [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % 96)];
  const { bf16, f32 } = quantEngines(raw, 41, { quantAlgo: "NVFP4", excludeModules: [] }, 0.1, { calibration });
  // 132 SMs: every linear of few row tiles on 16 warps a block; 4 SMs: 128-wide linears (8 row tiles) on 8 warps.
  for (const sms of [132, 4]) {
    const { kernels } = runFusedSchedule(bf16, f32, {
      unfused: sameAsUnfused,
      cpu: ({ what, got, want }) => assert.ok(relL2(got.logits, want.logits) < 0.35, `${what}: logits far from the CPU session's`),
      label: (l) => l.kernel,
      next: (s, r) => s.want.sampledIds[r],
      fusedOptions: { nvfp4Mma: true, nvfp4GemvK32: true, nvfp4NormFast: true },
      sms,
    });
    const want = sms === 4
      ? ["nvfp4_gemv_k32x_bf16_m1", "nvfp4_gemv_k32x_act_bf16_m1", "nvfp4_gemv_mma_bf16_m8"]
      : ["nvfp4_gemv_k32x_w16_bf16_m1", "nvfp4_gemv_k32x_act_w16_bf16_m1", "nvfp4_gemv_mma_w16_bf16_m8"];
    for (const k of [...want, "nvfp4_gemv_k32x_act_logits_bf16_m1", "nvfp4_rmsnorm_act_fast_bf16", "nvfp4_silu_mul_act_bf16"]) {
      assert.ok(kernels.has(k), `${sms} SMs: ${k} in the fused decode steps: ${[...kernels].join(" ")}`);
    }
  }
  // Batch-invariant (the session's default): the lm_head of a one-sequence step takes the GEMM path as 2..8 sequences do
  // (no m8 logits GEMV); the decoder linears keep nvfp4_gemv_k32x (nvfp4_gemv_mma's bits).
  const inv = runFusedSchedule(bf16, f32, {
    unfused: sameAsUnfused,
    cpu: ({ what, got, want }) => assert.ok(relL2(got.logits, want.logits) < 0.35, `${what}: logits far from the CPU session's`),
    label: (l) => l.kernel,
    next: (s, r) => s.want.sampledIds[r],
    fusedOptions: { nvfp4Mma: true, nvfp4GemvK32: true, nvfp4NormFast: true, batchInvariant: true },
  });
  assert.ok(inv.kernels.has("nvfp4_gemv_k32x_act_w16_bf16_m1"), [...inv.kernels].join(" "));
  assert.ok(![...inv.kernels].some((k) => k.includes("_logits")), `batch-invariant: no logits GEMV: ${[...inv.kernels].join(" ")}`);
  bf16.dispose();
  f32.dispose();
});

test("nvfp4ActLaunch (session 15): o_proj's act as its own launch and a persistent k32x grid; fake device vs the CPU", () => {
  const N = 640, K = 4096; // 40 row tiles; 4 SMs: a persistent grid of 16 blocks ((K / 64) % 32 == 0)
  const r = rng(9);
  const W = Float64Array.from({ length: N * K }, () => r() * (1 + (r() > 0.45 ? 3 : 0)));
  const rec = lowbitEngineRecord("w", quantizeNvfp4(W, N, K, 2.5));
  const tensors = new Map(rec.tensors.map((x) => [x.name, x.data]));
  const op: Extract<Op, { type: "linear" }> = { type: "linear", x: "x", out: "y", weight: "w", inFeatures: K, outFeatures: N, weightFormat: rec.weightFormat };
  const cpu = loadLowbitWeight(op, { readTensor: (n) => tensors.get(n)!, readFloat32: (n) => new Float32Array(tensors.get(n)!.slice().buffer) }).weight;
  const mem = new FakeMemory(), addr = new Map<string, bigint>();
  const tiles = nvfp4Tiles(tensors.get("w")!, tensors.get("w.scales")!, N, K);
  for (const [name, bytes] of [["w", tiles.codes], ["w.scales", tiles.scales]] as const) {
    const p = mem.alloc(bytes.length);
    mem.bytes(p, bytes.length).set(bytes);
    addr.set(name, p);
  }
  const plan = { ops: [op], maxTokens: 1, maxSeqs: 1 } as unknown as EnginePlan;
  const base = {
    plan,
    elem: "bf16",
    nvfp4Mma: true,
    nvfp4GemvK32: true,
    nvfp4GemvBlocks: 8,
    weight: (n: string) => addr.get(n)!,
    lowbitScratch: mem.alloc(lowbitScratchLayout(plan)!.bytes),
  };
  const x = mem.alloc(K * 2), y = mem.alloc(N * 2);
  const xv = bf(Array.from({ length: K }, (_, i) => r() * (i % 97 === 7 ? 40 : 3)));
  mem.u16(x, K).set(f32ToBf16(xv));
  const ref = new Float32Array(N);
  lowbitLinear(xv, cpu, null, 1, N, K, ref);
  for (
    const [flags, want] of [
      [{}, ["nvfp4_gemv_k32x_act_bf16_m1"]], // no producer: the _act form
      [{ nvfp4ActLaunch: true }, ["nvfp4_act_mma_bf16", "nvfp4_gemv_k32x_bf16_m1"]],
    ] as const
  ) {
    const e = { ...base, ...flags } as unknown as LaunchEnv;
    const launches: Launch[] = [];
    planLowbitLinear({ op, i: 0, rows: 1, isLogits: false, env: e, decodeStep: true, buf: (n) => (n === "x" ? x : y) }, launches);
    const kl = launches as KernelLaunch[];
    assert.deepEqual(kl.map((l) => l.kernel), want, JSON.stringify(flags));
    assert.equal(kl[kl.length - 1].grid[0], 16, `${JSON.stringify(flags)}: grid`);
    runLaunches(mem, launches, e);
    const got = bf16ToF32(mem.u16(y, N).slice());
    for (let i = 0; i < N; i++) {
      if (!(Math.abs(got[i] - ref[i]) <= 2 ** -8 * Math.abs(ref[i]) + 1e-6)) assert.fail(`${JSON.stringify(flags)}: output ${i}: ${got[i]} vs CPU ${ref[i]}`);
    }
  }
});

test("NVFP4 engine on the fake device with nvfp4ActLaunch: o_proj's act as its own launch, the plain k32x GEMV = the lowbit.cu path", () => {
  const raw = quantTestLlama(96);
  const calibration = [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % 96)];
  const { bf16, f32 } = quantEngines(raw, 41, { quantAlgo: "NVFP4", excludeModules: [] }, 0.1, { calibration });
  const { kernels } = runFusedSchedule(bf16, f32, {
    unfused: sameAsUnfused,
    cpu: ({ what, got, want }) => assert.ok(relL2(got.logits, want.logits) < 0.35, `${what}: logits far from the CPU session's`),
    label: (l) => l.kernel,
    next: (s, r) => s.want.sampledIds[r],
    fusedOptions: { nvfp4Mma: true, nvfp4GemvK32: true, nvfp4NormFast: true, nvfp4ActLaunch: true },
    sms: 4,
  });
  for (const k of ["nvfp4_act_mma_bf16", "nvfp4_gemv_k32x_bf16_m1", "nvfp4_gemv_k32x_logits_bf16_m1"]) {
    assert.ok(kernels.has(k), `${k} in the fused decode steps: ${[...kernels].join(" ")}`);
  }
  assert.ok(![...kernels].some((k) => k.includes("_act_bf16_m1") || k.includes("_act_logits")), [...kernels].join(" "));
  bf16.dispose();
  f32.dispose();
});
