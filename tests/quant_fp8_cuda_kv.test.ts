// Quantized KV cache on CUDA (issue 14), run on the fake device of tests/cuda_fake_device.ts (no GPU): a small
// random Llama with kvCacheQuantAlgo FP8 or INT8 (calibrated per-(layer, k | v, kv head) scales; bf16 weights,
// and FP8_PER_CHANNEL_PER_TOKEN weights + FP8 KV) runs prefill and decode steps of 1..8 sequences (graph buckets
// and eager steps) through rope_kv_write_{fp8kv|int8kv}_bf16 (k / v stored as encode(x / s)) and the decode and
// tensor-core prefill attention (tiles staged as bf16(decode(q) · s)); stand-ins keep those roundings. The
// fused plan (norms / epilogues folded; RoPE + KV write keep their launch) must give the unfused plan's bits
// (logits, ids, the KV bytes), the cache takes half the bytes of a bf16 one, and both match the float32 CPU
// session with the same quantized KV cache to bf16 tolerance. On a GPU: tests/gpu/fp8_kv.test.ts.
import type { KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { buildSync } from "../lib/builder/builder.ts";
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

// In-features 128 / 256 (whole 64-column chunks), out-features multiples of 16; biases everywhere.
const RAW = {
  vocab_size: 112,
  hidden_size: 128,
  intermediate_size: 256,
  num_hidden_layers: 2,
  max_position_embeddings: 256,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 64,
  attention_bias: true,
  mlp_bias: true,
};
const BUILD = { maxBatchSize: 8, maxNumTokens: 128, maxSeqLen: 160, tokensPerBlock: 4 };
/**
 * bf16 activations on the fake device vs the float32 CPU session: e4m3 keeps 3 mantissa bits, so an
 * activation that bf16 rounding moves across an e4m3 rounding boundary changes by 1/16. On this random
 * model (weights ±0.1) that leaves the logits 4.5-7.6e-2 apart (relative L2; measured), about FP8's own
 * distance from the unquantized model; a wrong scale, row or epilogue would be far beyond it.
 */
const LOGITS_TOL = 0.12;

/** ‖got − want‖₂ / ‖want‖₂. */
function relL2(got: Float32Array, want: Float32Array): number {
  let d = 0, w = 0;
  for (let i = 0; i < want.length; i++) {
    d += (got[i] - want[i]) ** 2;
    w += want[i] ** 2;
  }
  return Math.sqrt(d / w);
}
const CALIBRATION = [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % RAW.vocab_size), Array.from({ length: 40 }, (_, i) => (i * 17 + 2) % RAW.vocab_size)];

for (
  const [name, qc, tol] of [
    // Measured: ≤ 2.4e-2 (bf16 weights), ≤ 8.4e-2 (with FP8 linears, see LOGITS_TOL).
    ["bf16 weights + FP8 KV", { kvCacheQuantAlgo: "FP8" }, 0.05],
    ["FP8_PER_CHANNEL_PER_TOKEN weights + FP8 KV", { quantAlgo: "FP8_PER_CHANNEL_PER_TOKEN", kvCacheQuantAlgo: "FP8" }, LOGITS_TOL],
    ["bf16 weights + INT8 KV", { kvCacheQuantAlgo: "INT8" }, 0.05],
  ] as [string, QuantConfigInput, number][]
) {
  test(`quantized KV cache on a fake CUDA device: fused plan equals the unfused plan and the CPU session's: ${name}`, () => {
    const model = randomModel(RAW, 31, true, 0.1);
    const q = quantizeSync(model, qc, { calibration: CALIBRATION });
    const bf16 = buildSync(q, { ...BUILD, backend: "cuda", dtype: "bfloat16" });
    const f32 = buildSync(q, { ...BUILD, backend: "cpu", dtype: "float32" });
    q.close();
    model.close();
    const algo = qc.kvCacheQuantAlgo!, tag = algo === "FP8" ? "fp8kv" : "int8kv";
    assert.equal(bf16.plan.attributes.kvCache?.quantAlgo, algo);
    const numBlocks = 64, maxBlocks = 40, V = RAW.vocab_size;
    const fused = new FakeCudaSession(bf16, numBlocks, 132, false, { fusedDecode: true });
    const plain = new FakeCudaSession(bf16, numBlocks, 132, false, {});
    const cpu = new CpuSession(f32);
    const kv = cpu.createKvCache(numBlocks);
    const lens = [9, 5, 3, 7, 2, 6, 4, 8];
    const seqs = lens.map((n, s) => ({
      ids: Array.from({ length: n }, (_, j) => (s * 37 + j * 11 + 3) % V),
      blocks: Array.from({ length: 8 }, (_, b) => s * 8 + b),
    }));
    const pos = lens.map((n) => n - 1), last = seqs.map((s) => s.ids[s.ids.length - 1]);
    const kernels = new Set<string>(), prefillKernels = new Set<string>();
    const run = (what: string, which: number[], graphs: boolean, prefill = false): void => {
      const inp = prefill
        ? step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), maxBlocks)
        : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), maxBlocks);
      const want = { sampledIds: new Int32Array(inp.logitRows.length), logits: new Float32Array(inp.logitRows.length * V) };
      cpu.run(inp, want, kv);
      const got = fused.run(inp, graphs), ref = plain.run(inp, graphs);
      const ua = new Uint32Array(got.logits.buffer), ub = new Uint32Array(ref.logits.buffer);
      for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: fused vs unfused logit ${i}: ${got.logits[i]} vs ${ref.logits[i]}`);
      assert.deepEqual(Array.from(got.ids), Array.from(ref.ids), `${what}: fused vs unfused ids`);
      const kvBytes = bf16.plan.attributes.numLayers * fused.env.kvLayerBytes;
      const kf = fused.mem.bytes(fused.env.kvBase, kvBytes), kp = plain.mem.bytes(plain.env.kvBase, kvBytes);
      for (let i = 0; i < kvBytes; i++) if (kf[i] !== kp[i]) assert.fail(`${what}: fused vs unfused KV cache byte ${i}`);
      const rel = relL2(got.logits, want.logits);
      assert.ok(rel < tol, `${what}: logits differ from the CPU session's (rel L2 ${rel.toExponential(2)})`);
      if (prefill) { for (const l of fused.lastLaunches) if (l.kind === "kernel") prefillKernels.add(l.kernel); }
      if (!prefill) {
        assert.ok(
          fused.lastLaunches.length < plain.lastLaunches.length,
          `${what}: ${fused.lastLaunches.length} fused launches vs ${plain.lastLaunches.length}`,
        );
        for (const l of fused.lastLaunches) {
          if (l.kind === "kernel") kernels.add(`${(l as KernelLaunch).kernel}${l.kernel.startsWith("fp8_gemv_fused") ? `/${l.args[11]}` : ""}`);
        }
        which.forEach((s, r) => {
          last[s] = got.ids[r];
          pos[s]++;
        });
      }
    };
    run("prefill", [], false, true);
    const schedule: [number[], boolean][] = [[[0, 1, 2, 3, 4, 5, 6, 7], true], [[0, 1, 2], true], [[3], true], [[0, 4, 5], false], [[6, 7], true], [
      [1],
      false,
    ]];
    schedule.forEach(([which, graphs], i) => run(`decode ${i}: ${which.length} sequence(s) (${graphs ? "graph bucket" : "eager"})`, which, graphs));
    const k = [...kernels].sort().join(" ");
    for (const w of [`rope_kv_write_${tag}_bf16`, `paged_attention_decode_${tag}_bf16_hd64`]) assert.ok(kernels.has(w), `${w} in ${k}`);
    assert.ok(![...kernels].some((x) => x.startsWith("decode_attention") || x === "rope_kv_write_bf16" || x.startsWith("paged_attention_decode_bf16")), k);
    assert.ok(prefillKernels.has(`paged_attention_prefill_mma_${tag}_bf16_hd64`), [...prefillKernels].join(" "));
    // One byte per element: half the bf16 cache of the same blocks.
    const a = bf16.plan.attributes;
    assert.equal(fused.env.kvLayerBytes, (numBlocks + 1) * 2 * BUILD.tokensPerBlock * a.numKvHeads * a.headDim);
    bf16.dispose();
    f32.dispose();
  });
}
