/**
 * GPU: the tensor-core quantized GEMM of batched decode steps (`quantGemm`, kernels/quant_gemm.cu; skipped without a GPU)
 * end to end on a small random Llama quantized W4A16 (g128 + zero points, g64) and W8A16 (per channel): a 40-sequence
 * prefill, then graph and eager decode steps of 40 and 33 (uint4: the 64-row tiles), 20, 12 and 9 sequences, each step's logits against the float32 CPU
 * session of the same quantized weights and against the CUDA session without quantGemm (dequantize + cuBLASLt).
 * The kernels alone vs float64: tools/cuda-kernel-check/quant_gemm.py; the plan: tests/quant_cuda_gemm.test.ts.
 */
import { buildSync } from "../../lib/builder/builder.ts";
import type { QuantConfigInput } from "../../lib/quantization/quant_config.ts";
import { quantizeSync } from "../../lib/quantization/quantize.ts";
import { Session } from "../../lib/runtime/session.ts";
import { randomModel, step } from "../cuda_fake_device.ts";
import { relL2, W4_GPU_LLAMA } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { gpuTest } from "./gpu.ts";

const CASES: [string, QuantConfigInput][] = [
  ["W4A16 g128 + zero points", { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true }],
  ["W4A16 g64", { quantAlgo: "W4A16", groupSize: 64 }],
  ["W8A16 per channel", { quantAlgo: "W8A16" }],
];

for (const [name, qc] of CASES) {
  gpuTest(`quant_gemm (${name}): decode steps of 9..40 sequences match the CPU session and the dequantize + cuBLASLt path`, () => {
    const model = randomModel(W4_GPU_LLAMA, 43, true, 0.15);
    const V = W4_GPU_LLAMA.vocab_size;
    const q = quantizeSync(model, qc);
    const shape = { maxBatchSize: 48, maxNumTokens: 2048, maxSeqLen: 256, tokensPerBlock: 16 };
    using engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", ...shape });
    using cpuEngine = buildSync(q, { backend: "cpu", ...shape });
    q.close();
    model.close();
    const on = Session.fromSerializedEngine(engine, { backend: "cuda", quantGemm: true });
    const off = Session.fromSerializedEngine(engine, { backend: "cuda", quantGemm: false });
    const cpu = Session.fromSerializedEngine(cpuEngine, { backend: "cpu" });
    try {
      const n = 40, maxBlocks = 8, numBlocks = n * maxBlocks;
      const kvOn = on.createKvCache(numBlocks), kvOff = off.createKvCache(numBlocks), kvC = cpu.createKvCache(numBlocks);
      const lens = Array.from({ length: n }, (_, s) => 1 + ((s * 13) % 40));
      const seqs = lens.map((len, s) => ({
        ids: Array.from({ length: len }, (_, j) => (s * 31 + j * 7 + 1) % V),
        blocks: Array.from({ length: maxBlocks }, (_, j) => s * maxBlocks + j),
      }));
      const pos = lens.slice(), last = seqs.map((s) => s.ids[s.ids.length - 1]);
      const report: string[] = [];
      const run = (label: string, which: number[], prefill = false): void => {
        const inp = prefill
          ? step(seqs.map((s) => ({ ids: s.ids, pos: 0, blocks: s.blocks })), maxBlocks)
          : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), maxBlocks);
        const R = which.length;
        const gOn = new Float32Array(R * V), gOff = new Float32Array(R * V), gC = new Float32Array(R * V);
        const iOn = new Int32Array(R), iOff = new Int32Array(R), iC = new Int32Array(R);
        cpu.run(inp, { logits: gC, sampledIds: iC }, kvC);
        on.run(inp, { logits: gOn, sampledIds: iOn }, kvOn);
        off.run(inp, { logits: gOff, sampledIds: iOff }, kvOff);
        const eC = relL2(gOn, gC), eOff = relL2(gOn, gOff), eOffC = relL2(gOff, gC);
        report.push(`${label}: vs CPU ${eC.toExponential(2)} (dequantize path ${eOffC.toExponential(2)}), vs it ${eOff.toExponential(2)}`);
        assert.ok(eC < 0.05 && Number.isFinite(eC), `${label}: logits rel L2 ${eC} vs the CPU session`);
        assert.ok(eC < 1.5 * eOffC + 0.01, `${label}: quant_gemm ${eC} vs the CPU, the dequantize path ${eOffC}`);
        if (prefill) return;
        which.forEach((s, r) => {
          last[s] = iC[r]; // follow the CPU's ids (the three sessions see the same tokens)
          pos[s]++;
        });
      };
      const all = lens.map((_, i) => i);
      run("prefill 40", all, true);
      for (let i = 0; i < 2; i++) run(`decode ${i}: 40 sequences`, all);
      run("decode: 33 sequences", all.slice(7));
      run("decode: 20 sequences", all.slice(0, 20));
      run("decode: 12 sequences", all.slice(0, 12));
      run("decode: 9 sequences", all.slice(3, 12));
      run("decode: 40 sequences again", all);
      console.log(`quant_gemm ${name}: ${report.join("; ")}`);
      assert.ok(on.cuda!.numGraphs >= 1, "decode steps ran as graphs");
    } finally {
      on.dispose();
      off.dispose();
      cpu.dispose();
    }
  }, 300_000);
}
