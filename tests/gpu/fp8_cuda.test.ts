/**
 * GPU: FP8 (e4m3) linears of bfloat16 CUDA engines (issue 14; skipped without a GPU). The tensor-core
 * GEMV (fp8_gemv_bf16, m = 1..8, static and per-token scales) and the prefill kernels (fp8_quantize_bf16,
 * fp8_scale_bf16) against the CPU's fp8Linear on the same bf16 inputs; then kjv-llama FP8 and
 * FP8_PER_CHANNEL_PER_TOKEN engines end to end — a prefill (cuBLASLt FP8 GEMM), a 6-token step (GEMV,
 * m = 6) and graph decode steps (GEMV, m = 1) — against the CPU backend's engine of the same quantized weights; and the
 * GEMV's bandwidth on llama-3.2-1b / llama-3.1-8b shapes against a device copy measured in the same run.
 */
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { type CpuFp8Weight, fp8Linear } from "../../lib/backends/cpu/quant_linear.ts";
import { buildSync } from "../../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../../lib/models/llama.ts";
import { quantizeFp8 } from "../../lib/quantization/fp8.ts";
import { quantizeSync } from "../../lib/quantization/quantize.ts";
import { Session } from "../../lib/runtime/session.ts";
import { e4m3Encode } from "../../lib/util/e4m3.ts";
import { relL2 } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { copyCeilingGBs, DECODE_LINEARS, graphMsPerLaunch, L2_FLUSH_BYTES } from "./gemv_timing.ts";
import { device, fromBf16Bits, gpuTest, seededUniform, step, toBf16Bits } from "./gpu.ts";

const GEMV = ["ptr", "ptr", "ptr", "ptr", "ptr", "i32", "i32", "i32", "f32"] as const;
const bf16 = (f: Float32Array): Uint16Array => Uint16Array.from(f, (v) => toBf16Bits(v));
const unBf16 = (b: Uint16Array): Float32Array => Float32Array.from(b, (v) => fromBf16Bits(v));
const kjv = new URL("../../models/kjv-llama/", import.meta.url).pathname;

for (const [N, K] of [[80, 576], [256, 4096]] as const) {
  gpuTest(`fp8_gemv_bf16 [${N}x${K}]: m = 1, 3, 8, static and per-token scales, bias, equal the CPU's fp8Linear on the same bf16 inputs`, () => {
    const d = device();
    using mod = loadKernelFile(d, "fp8_gemv.cu");
    const kern = mod.kernel("fp8_gemv_bf16", GEMV);
    const w = seededUniform(11 + N, N * K, -0.08, 0.08);
    for (let n = 0; n < N; n++) w[n * K + (n % K)] *= 8; // row amaxes differ (per-channel scales differ)
    const bias = bf16(seededUniform(5, N, -0.5, 0.5));
    using dBias = d.alloc(N * 2);
    dBias.copyFromHost(bias);
    for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
      const t = quantizeFp8(w, N, K, algo, 2.5);
      using W = d.alloc(N * K);
      using S = d.alloc(N * 4);
      W.copyFromHost(t.packed);
      S.copyFromHost(t.scales);
      const cw: CpuFp8Weight = { bytes: t.packed, scales: t.scales, activationScale: t.activationScale ?? null };
      for (const m of [1, 3, 8]) {
        const x = seededUniform(7 + m, m * K, -3, 3); // FP8's static scale (amax 2.5) saturates some
        const xb = bf16(x);
        using dx = d.alloc(m * K * 2);
        using dy = d.alloc(m * N * 2);
        dx.copyFromHost(xb);
        kern.launch(Math.ceil(N / 16), 256, [dx, W, S, dBias, dy, m, N, K, t.activationScale ?? 0]);
        const got = new Uint16Array(m * N);
        dy.copyToHost(got);
        const want = new Float32Array(m * N);
        fp8Linear(unBf16(xb), cw, unBf16(bias), m, N, K, want);
        let worst = 0;
        for (let i = 0; i < m * N; i++) worst = Math.max(worst, Math.abs(fromBf16Bits(got[i]) - want[i]) / Math.max(Math.abs(want[i]), 0.05));
        // bf16 output rounding (2^-9 relative) plus fp32 accumulation order; the quantized activations are the same bytes.
        assert.ok(worst <= 2 ** -8, `${algo} m=${m}: max relative error ${worst}`);
      }
    }
  });
}

gpuTest("fp8_quantize_bf16 writes e4m3(x / a) bytes and the row scales (static and per token); fp8_scale_bf16 applies row · column scales + bias", () => {
  const d = device();
  using mod = loadKernelFile(d, "fp8_gemv.cu");
  const rows = 5, K = 1024, N = 64;
  const x = seededUniform(3, rows * K, -4, 4);
  for (let k = 0; k < K; k++) x[2 * K + k] = 0; // an all-zero row: scale 1
  const xb = bf16(x), xf = unBf16(xb);
  using dx = d.alloc(rows * K * 2);
  using q = d.alloc(rows * K);
  using s = d.alloc(rows * 4);
  dx.copyFromHost(xb);
  for (const actScale of [0.0125, 0]) {
    mod.kernel("fp8_quantize_bf16", ["ptr", "ptr", "ptr", "i32", "i32", "f32"]).launch(rows, 256, [dx, q, s, rows, K, actScale]);
    const bytes = new Uint8Array(rows * K), scales = new Float32Array(rows);
    q.copyToHost(bytes);
    s.copyToHost(scales);
    let mismatches = 0;
    for (let r = 0; r < rows; r++) {
      let amax = 0;
      for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(xf[r * K + k]));
      const a = actScale ? Math.fround(actScale) : amax > 0 ? Math.fround(amax / 448) : 1;
      assert.equal(scales[r], a, `row ${r} scale`);
      for (let k = 0; k < K; k++) if (bytes[r * K + k] !== e4m3Encode(Math.fround(xf[r * K + k] / a))) mismatches++;
    }
    assert.ok(mismatches <= 1, `actScale ${actScale}: ${mismatches} bytes differ from e4m3(x / a)`);
  }
  const y = seededUniform(9, rows * N, -100, 100), colScale = seededUniform(10, N, 0.001, 0.01), b = bf16(seededUniform(4, N));
  const rowScale = Float32Array.from({ length: rows }, (_, r) => 0.5 + r);
  using dy = d.alloc(rows * N * 2);
  using dr = d.alloc(rows * 4);
  using dc = d.alloc(N * 4);
  using db = d.alloc(N * 2);
  dy.copyFromHost(bf16(y));
  dr.copyFromHost(rowScale);
  dc.copyFromHost(colScale);
  db.copyFromHost(b);
  mod.kernel("fp8_scale_bf16", ["ptr", "ptr", "ptr", "ptr", "i32", "i32"]).launch([1, rows, 1], 256, [dy, dr, dc, db, rows, N]);
  const got = new Uint16Array(rows * N);
  dy.copyToHost(got);
  for (let r = 0; r < rows; r++) {
    for (let n = 0; n < N; n++) {
      const want = fromBf16Bits(toBf16Bits(y[r * N + n])) * rowScale[r] * colScale[n] + fromBf16Bits(b[n]);
      assert.ok(Math.abs(fromBf16Bits(got[r * N + n]) - want) <= 2 ** -8 * Math.abs(want) + 1e-6, `[${r}, ${n}]`);
    }
  }
});

for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
  gpuTest(
    `kjv-llama ${algo} on CUDA (bf16): prefill (cuBLASLt FP8), a 6-token step and graph decode steps (FP8 GEMV) match the CPU emulation of the same quantized weights`,
    () => {
      const q = quantizeSync(AutoModelForCausalLM.fromHuggingFace(kjv), { quantAlgo: algo }, { maxCalibrationTokens: 256 });
      const shape = { maxBatchSize: 4, maxNumTokens: 64, maxSeqLen: 128, tokensPerBlock: 16 };
      // The same e4m3 bytes and scales in both; the CPU engine keeps the float weights (norms, embeddings) in float32.
      using engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", ...shape });
      using cpuEngine = buildSync(q, { backend: "cpu", ...shape });
      q.close();
      // Batch-invariant (the default): steps that are not pure decode take cuBLASLt; without it the 6-token chunk takes the GEMV (m = 6).
      const cudas = [true, false].map((batchInvariant) => Session.fromSerializedEngine(engine, { backend: "cuda", batchInvariant }));
      const cpu = Session.fromSerializedEngine(cpuEngine, { backend: "cpu" });
      try {
        const V = engine.plan.attributes.vocabSize;
        const kvG = cudas.map((s) => s.createKvCache(8)), kvC = cpu.createKvCache(8);
        const blocks = [0, 1, 2, 3, 4, 5];
        const prompt = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % V);
        const report: string[] = [];
        const check = (label: string, ids: number[], pos: number, tol: number): number => {
          const c = new Float32Array(V), sc = new Int32Array(1);
          cpu.run(step(ids, pos, blocks), { logits: c, sampledIds: sc }, kvC);
          cudas.forEach((cuda, i) => {
            const g = new Float32Array(V), sg = new Int32Array(1);
            cuda.run(step(ids, pos, blocks), { logits: g, sampledIds: sg }, kvG[i]);
            const e = relL2(g, c);
            report.push(`${label}${i ? " (not batch-invariant)" : ""} rel L2 ${e.toExponential(2)} argmax ${sg[0] === sc[0] ? "same" : "differs"}`);
            assert.ok(e < tol, `${algo} ${label}: logits rel L2 ${e} vs the CPU emulation`);
          });
          return sc[0];
        };
        // Prefill: 40 rows take cuBLASLt's FP8 GEMM; then a 6-token chunk; then decode (GEMV, m = 1, graphs).
        check("prefill 40", prompt, 0, 0.05);
        let next = check("chunk 6", prompt.slice(0, 6), 40, 0.05);
        for (let i = 0; i < 4; i++) next = check(`decode ${i}`, [next], 46 + i, 0.05);
        console.log(`kjv-llama ${algo} CUDA vs CPU emulation: ${report.join("; ")}`);
        for (const cuda of cudas) assert.ok(cuda.cuda!.numGraphs >= 1, "decode steps ran as graphs");
      } finally {
        for (const cuda of cudas) cuda.dispose();
        cpu.dispose();
      }
    },
    300_000,
  );
}

gpuTest("fp8_gemv_bf16 bandwidth (m = 1, per-token scales) on 1B/8B linear shapes vs the device-copy ceiling", () => {
  const d = device();
  using mod = loadKernelFile(d, "fp8_gemv.cu");
  const kern = mod.kernel("fp8_gemv_bf16", GEMV);
  using stream = d.createStream();
  using t0 = d.createEvent();
  using t1 = d.createEvent();
  const ceiling = copyCeilingGBs(d, stream, t0, t1);
  const lines = [`device copy ceiling ${ceiling.toFixed(0)} GB/s`];
  for (const [model, spec] of Object.entries(DECODE_LINEARS)) {
    let ms = 0, bytes = 0;
    for (const [lin, N, K] of spec.linears) {
      const copies = Math.max(1, Math.ceil(L2_FLUSH_BYTES / (N * K))); // distinct weights: none stays in L2
      using W = d.alloc(copies * N * K);
      using S = d.alloc(N * 4);
      using x = d.alloc(K * 2);
      using y = d.alloc(N * 2);
      W.fill(0x38, { stream }); // e4m3 1.0
      S.copyFromHost(new Float32Array(N).fill(0.01));
      x.copyFromHost(bf16(seededUniform(2, K)));
      const one = graphMsPerLaunch(
        stream,
        t0,
        t1,
        (s, i) => kern.launch(Math.ceil(N / 16), 256, [x, W.ptr + BigInt(i * N * K), S, 0n, y, 1, N, K, 0], { stream: s }),
        copies,
      );
      const gbs = (N * K) / (one * 1e6);
      lines.push(`${model} ${lin} [${N}x${K}]: ${(one * 1000).toFixed(1)} us, ${gbs.toFixed(0)} GB/s = ${((100 * gbs) / ceiling).toFixed(1)}% of copy`);
      ms += one * spec.layers;
      bytes += N * K * spec.layers;
    }
    const gbs = bytes / (ms * 1e6);
    lines.push(`${model} all decoder linears FP8: ${ms.toFixed(3)} ms per token, ${gbs.toFixed(0)} GB/s = ${((100 * gbs) / ceiling).toFixed(1)}% of copy`);
  }
  console.log(lines.join("\n"));
});
