// quantGemvPairX (session 19, issue 12) on the GPU (skipped without one): quant_gemv_fastx_addnorm_u4 → quant_gemv_fastx_rs_u4
// (the launcher's tailNorm pair between two uint4 linears: xw in the mma's pair order, read without x permutes; the _rs
// form's zero points packed) against quant_gemv_fast_addnorm_u4 → quant_gemv_fast_rs_u4, the default (float64-checked in
// tests/quant_cuda.test.ts): the same products added in the same order, so the residual, the sums of squares and the
// next GEMV's outputs must be the same bits, and xw the same values, each 8-element chunk as (x0, x4, x1, x5, x2, x6, x3, x7).
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { buildSync } from "../../lib/builder/builder.ts";
import type { DeviceBuffer } from "../../lib/cuda/memory.ts";
import { type IntGrid, quantizeRtn } from "../../lib/quantization/algorithms.ts";
import { quantizeSync } from "../../lib/quantization/quantize.ts";
import { Session } from "../../lib/runtime/session.ts";
import { randomModel, step } from "../cuda_fake_device.ts";
import { W4_GPU_LLAMA } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { device, gpuTest, seededUniform, toBf16Bits } from "./gpu.ts";

const P = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "i32"] as const;
const bf16 = (f: Float32Array): Uint16Array => Uint16Array.from(f, (v) => toBf16Bits(v));

// [name, grid, N (the residual width: the consumer's k), K (the producer's k)]: k 4096 / 14336 (the 8B o / down), a
// consumer k of 256 (one superchunk a warp: unpaired loads), g128 symmetric, g256 (a group is two superchunks).
const CASES: [string, IntGrid, number, number][] = [
  ["g128 zero points, k 4096", { bits: 4, groupSize: 128, hasZeroPoint: true }, 512, 4096],
  ["g128 zero points, k 14336", { bits: 4, groupSize: 128, hasZeroPoint: true }, 256, 14336],
  ["g128 symmetric, k 2560", { bits: 4, groupSize: 128, hasZeroPoint: false }, 256, 2560],
  ["g256 zero points, k 4096", { bits: 4, groupSize: 256, hasZeroPoint: true }, 1024, 4096],
];

function up(d: ReturnType<typeof device>, a: ArrayBufferView): DeviceBuffer {
  const b = d.alloc(a.byteLength);
  b.copyFromHost(a);
  return b;
}

for (const [name, grid, N, K] of CASES) {
  gpuTest(`quant_gemv_fastx_addnorm_u4 → _rs_u4 ${name}: the same bits as the quant_gemv_fast pair (xw in pair order)`, () => {
    const d = device();
    const names = ["quant_gemv_fast_addnorm_u4", "quant_gemv_fast_rs_u4", "quant_gemv_fastx_addnorm_u4", "quant_gemv_fastx_rs_u4"];
    using mod = loadKernelFile(d, "quant_gemv.cu", { options: ["-DLLMRT_SELECT", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
    // Producer: N rows from K (the residual width is N); consumer: 2N rows from N (modes 0 and 2).
    const t = quantizeRtn(seededUniform(5 + N, N * K, -0.05, 0.05), N, K, grid);
    const t2 = quantizeRtn(seededUniform(7 + N, 2 * N * N, -0.05, 0.05), 2 * N, N, grid);
    using W = up(d, t.packed);
    using s = up(d, t.scales);
    using z = t.zeros ? up(d, t.zeros) : null;
    using W2 = up(d, t2.packed);
    using s2 = up(d, t2.scales);
    using z2 = t2.zeros ? up(d, t2.zeros) : null;
    using normW = up(d, bf16(seededUniform(11, N, 0.5, 1.5)));
    const pos = (i: number): number => (i & ~7) | ((i & 3) << 1) | ((i >> 2) & 1);
    for (const m of [1, 3, 8]) {
      using x = up(d, bf16(seededUniform(17 + m, m * K)));
      const resid = bf16(seededUniform(23 + m, m * N));
      const got: { r: Uint16Array; xw: Uint16Array; ssq: Float32Array; y: Uint16Array[] }[] = [];
      for (const fam of ["quant_gemv_fast", "quant_gemv_fastx"]) {
        using r = up(d, resid);
        using xw = d.alloc(m * N * 2);
        using ssq = d.alloc(m * (N / 16) * 4);
        mod.kernel(`${fam}_addnorm_u4`, [...P, "ptr", "ptr"]).launch(N / 16, 256, [x, W, s, z ?? 0n, 0n, r, normW, 1e-5, m, N, K, grid.groupSize, 1, xw, ssq]);
        const o = { r: new Uint16Array(m * N), xw: new Uint16Array(m * N), ssq: new Float32Array(m * (N / 16)), y: [] as Uint16Array[] };
        r.copyToHost(o.r);
        xw.copyToHost(o.xw);
        ssq.copyToHost(o.ssq);
        for (const mode of [0, 2]) {
          const outN = mode === 2 ? N : 2 * N;
          using y = d.alloc(m * outN * 2);
          mod.kernel(`${fam}_rs_u4`, P).launch((2 * N) / 16, 256, [xw, W2, s2, z2 ?? 0n, 0n, y, ssq, 1e-5, m, 2 * N, N, grid.groupSize, mode]);
          const yo = new Uint16Array(m * outN);
          y.copyToHost(yo);
          o.y.push(yo);
        }
        got.push(o);
      }
      const [a, b] = got;
      assert.deepEqual(Array.from(b.r), Array.from(a.r), `${name} m=${m}: residual`);
      assert.deepEqual(Array.from(b.ssq), Array.from(a.ssq), `${name} m=${m}: sums of squares`);
      for (let i = 0; i < m * N; i++) if (b.xw[pos(i)] !== a.xw[i]) assert.fail(`${name} m=${m}: xw element ${i} not at ${pos(i)}`);
      for (const [j, mode] of [0, 2].entries()) {
        assert.deepEqual(Array.from(b.y[j]), Array.from(a.y[j]), `${name} m=${m}: the _rs outputs of mode ${mode}`);
      }
    }
  });
}

// quant_gemv_fastxx_rs_u4 (gate_up, mode 2: its SiLU·mul output in pair order) → quant_gemv_fastxx_addnorm_u4 / _u4 (down,
// reading it so) against quant_gemv_fast_rs_u4 → quant_gemv_fast_addnorm_u4 / _u4: the same residuals and sums of squares,
// the SiLU·mul outputs and xw the same values in pair order. [hidden H, intermediate I].
for (const [H, I] of [[256, 2048], [512, 1024]]) {
  gpuTest(`quant_gemv_fastxx (gate_up → down) H ${H}, I ${I}: the same bits as the quant_gemv_fast kernels`, () => {
    const d = device(), grid: IntGrid = { bits: 4, groupSize: 128, hasZeroPoint: true };
    const names = ["fast_rs", "fast_addnorm", "fast", "fastxx_rs", "fastxx_addnorm", "fastxx"].map((n) => `quant_gemv_${n}_u4`);
    using mod = loadKernelFile(d, "quant_gemv.cu", { options: ["-DLLMRT_SELECT", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
    const tg = quantizeRtn(seededUniform(31, 2 * I * H, -0.05, 0.05), 2 * I, H, grid), td = quantizeRtn(seededUniform(37, H * I, -0.05, 0.05), H, I, grid);
    using Wg = up(d, tg.packed);
    using sg = up(d, tg.scales);
    using zg = up(d, tg.zeros!);
    using Wd = up(d, td.packed);
    using sd = up(d, td.scales);
    using zd = up(d, td.zeros!);
    using normW = up(d, bf16(seededUniform(41, H, 0.5, 1.5)));
    const pos = (i: number): number => (i & ~7) | ((i & 3) << 1) | ((i >> 2) & 1);
    for (const m of [1, 3, 8]) {
      const xw = bf16(seededUniform(43 + m, m * H)), xwP = new Uint16Array(m * H);
      for (let i = 0; i < m * H; i++) xwP[pos(i)] = xw[i];
      const ssqIn = seededUniform(47 + m, m * (H / 16), 0.5, 2);
      const resid = bf16(seededUniform(53 + m, m * H));
      const got = ["quant_gemv_fast", "quant_gemv_fastxx"].map((fam) => {
        using x = up(d, fam === "quant_gemv_fast" ? xw : xwP);
        using ssq = up(d, ssqIn);
        using act = d.alloc(m * I * 2);
        mod.kernel(`${fam}_rs_u4`, P).launch((2 * I) / 16, 256, [x, Wg, sg, zg, 0n, act, ssq, 1e-5, m, 2 * I, H, 128, 2]);
        using r1 = up(d, resid);
        using r2 = up(d, resid);
        using xo = d.alloc(m * H * 2);
        using so = d.alloc(m * (H / 16) * 4);
        mod.kernel(`${fam}_addnorm_u4`, [...P, "ptr", "ptr"]).launch(H / 16, 256, [act, Wd, sd, zd, 0n, r1, normW, 1e-5, m, H, I, 128, 1, xo, so]);
        mod.kernel(`${fam}_u4`, P).launch(H / 16, 256, [act, Wd, sd, zd, 0n, r2, 0n, 0, m, H, I, 128, 1]);
        const o = {
          act: new Uint16Array(m * I),
          r1: new Uint16Array(m * H),
          r2: new Uint16Array(m * H),
          xo: new Uint16Array(m * H),
          so: new Float32Array(m * (H / 16)),
        };
        act.copyToHost(o.act);
        r1.copyToHost(o.r1);
        r2.copyToHost(o.r2);
        xo.copyToHost(o.xo);
        so.copyToHost(o.so);
        return o;
      });
      const [a, b] = got;
      for (let i = 0; i < m * I; i++) if (b.act[pos(i)] !== a.act[i]) assert.fail(`m=${m}: SiLU·mul element ${i} not at ${pos(i)}`);
      assert.deepEqual(Array.from(b.r1), Array.from(a.r1), `m=${m}: _addnorm residual`);
      assert.deepEqual(Array.from(b.r2), Array.from(a.r2), `m=${m}: plain mode 1 residual`);
      assert.deepEqual(Array.from(b.so), Array.from(a.so), `m=${m}: sums of squares`);
      for (let i = 0; i < m * H; i++) if (b.xo[pos(i)] !== a.xo[i]) assert.fail(`m=${m}: xw element ${i} not at ${pos(i)}`);
    }
  });
}

// End to end: a small random Llama quantized W4A16 g128 + zero points (every linear a fusable uint4 GEMV, so each layer's
// o / down → gate_up / next qkv tailNorm pairs run quant_gemv_fastx*, gate_up → down quant_gemv_fastxx*) — a prefill of 3 sequences, then graph decode steps of
// 3 and 1 sequences: the session with quantGemvPairX gives the logits and ids of the session without it, bit for bit.
gpuTest("quantGemvPairX / quantGemvPairDown: a W4A16 g128 engine's prefill and decode logits are the same bits with and without", () => {
  const model = randomModel(W4_GPU_LLAMA, 47, true, 0.15);
  const q = quantizeSync(model, { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true });
  const shape = { maxBatchSize: 8, maxNumTokens: 512, maxSeqLen: 128, tokensPerBlock: 16 };
  using engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", ...shape });
  q.close();
  model.close();
  const V = W4_GPU_LLAMA.vocab_size, maxBlocks = 4;
  // quantGemvPairX + quantGemvPairDown (fastx + fastxx), quantGemvPairX alone (fastx), neither (quant_gemv_fast).
  const sessions = [[true, true], [true, false], [false, false]].map(([on, down]) =>
    Session.fromSerializedEngine(engine, { backend: "cuda", quantGemvPairX: on, quantGemvPairDown: down })
  );
  try {
    const kvs = sessions.map((s) => s.createKvCache(3 * maxBlocks));
    const seqs = [0, 1, 2].map((s) => ({
      ids: Array.from({ length: 5 + 7 * s }, (_, j) => (s * 31 + j * 7 + 1) % V),
      blocks: [0, 1, 2, 3].map((j) => s * maxBlocks + j),
    }));
    const pos = seqs.map((s) => s.ids.length), last = seqs.map((s) => s.ids[s.ids.length - 1]);
    const runBoth = (label: string, which: number[], prefill: boolean): void => {
      const inp = prefill
        ? step(seqs.map((s) => ({ ids: s.ids, pos: 0, blocks: s.blocks })), maxBlocks)
        : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), maxBlocks);
      const R = which.length;
      const outs = sessions.map((sess, i) => {
        const logits = new Float32Array(R * V), ids = new Int32Array(R);
        sess.run(inp, { logits, sampledIds: ids }, kvs[i]);
        return { logits, ids };
      });
      const a = outs[0];
      for (const [j, b] of outs.slice(1).entries()) {
        const diff = a.logits.findIndex((v, i) => Object.is(v, b.logits[i]) === false);
        assert.ok(diff < 0, `${label}: logits of session ${j + 1} differ at ${diff} (${a.logits[diff]} vs ${b.logits[diff]})`);
        assert.deepEqual(Array.from(a.ids), Array.from(b.ids), `${label}: ids of session ${j + 1}`);
      }
      if (prefill) return;
      which.forEach((s, r) => {
        last[s] = a.ids[r];
        pos[s]++;
      });
    };
    runBoth("prefill", [0, 1, 2], true);
    for (let i = 0; i < 3; i++) runBoth(`decode ${i}: 3 sequences`, [0, 1, 2], false);
    for (let i = 0; i < 2; i++) runBoth(`decode ${i}: 1 sequence`, [1], false);
    assert.ok(sessions[0].cuda!.numGraphs >= 1, "decode steps ran as graphs");
    kvs.forEach((kv) => kv.dispose());
  } finally {
    sessions.forEach((s) => s.dispose());
  }
}, 300_000);
