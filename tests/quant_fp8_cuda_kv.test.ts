// Quantized KV cache on CUDA (issue 14), run on the fake device of tests/cuda_fake_device.ts (no GPU): a small
// random Llama with kvCacheQuantAlgo FP8 or INT8 (calibrated per-(layer, k | v, kv head) scales; bf16 weights,
// and FP8_PER_CHANNEL_PER_TOKEN weights + FP8 KV) runs prefill and decode steps of 1..8 sequences (graph buckets
// and eager steps) through rope_kv_write_{fp8kv|int8kv}_bf16 (k / v stored as encode(x / s)) and the decode and
// tensor-core prefill attention (tiles staged as bf16(decode(q) · s)); stand-ins keep those roundings. The
// fused plan (norms / epilogues folded; RoPE + KV write keep their launch) must give the unfused plan's bits
// (logits, ids, the KV bytes), the cache takes half the bytes of a bf16 one, and both match the float32 CPU
// session with the same quantized KV cache to bf16 tolerance. With fp8DecodeAttention the fused decode steps fold
// RoPE + the quantized KV write + split attention + merge into decode_attention_{fp8kv|int8kv} and must still give the
// unfused plan's bits. On a GPU: tests/gpu/fp8_kv.test.ts.
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { FP8_LOGITS_TOL, FUSED_NUM_BLOCKS, QUANT_TEST_BUILD, quantEngines, quantTestLlama, relL2, runFusedSchedule, sameAsUnfused } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";
import { decodeSkGeometry, decodeSkSplitArg, decodeSkSplitKeys, decodeSkSplitOf, FP8_DECODE_SK_SMALL_SPLIT } from "../lib/backends/cuda/attention_choice.ts";

const RAW = quantTestLlama(112);
const V = RAW.vocab_size as number;
const CALIBRATION = [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % V), Array.from({ length: 40 }, (_, i) => (i * 17 + 2) % V)];

for (
  const [name, qc, tol] of [
    // Measured: ≤ 2.4e-2 (bf16 weights), ≤ 8.4e-2 (with FP8 linears, see FP8_LOGITS_TOL).
    ["bf16 weights + FP8 KV", { kvCacheQuantAlgo: "FP8" }, 0.05],
    ["FP8_PER_CHANNEL_PER_TOKEN weights + FP8 KV", { quantAlgo: "FP8_PER_CHANNEL_PER_TOKEN", kvCacheQuantAlgo: "FP8" }, FP8_LOGITS_TOL],
    ["bf16 weights + INT8 KV", { kvCacheQuantAlgo: "INT8" }, 0.05],
  ] as [string, QuantConfigInput, number][]
) {
  test(`quantized KV cache on a fake CUDA device: fused plan equals the unfused plan and the CPU session's: ${name}`, () => {
    const { bf16, f32 } = quantEngines(RAW, 31, qc, 0.1, { calibration: CALIBRATION });
    const algo = qc.kvCacheQuantAlgo!, tag = algo === "FP8" ? "fp8kv" : "int8kv";
    assert.equal(bf16.plan.attributes.kvCache?.quantAlgo, algo);
    const { fused, kernels, prefillKernels } = runFusedSchedule(bf16, f32, {
      unfused: sameAsUnfused,
      cpu: ({ what, got, want }) => {
        const rel = relL2(got.logits, want.logits);
        assert.ok(rel < tol, `${what}: logits differ from the CPU session's (rel L2 ${rel.toExponential(2)})`);
      },
      label: (l) => `${l.kernel}${l.kernel.startsWith("fp8_gemv_fused") ? `/${l.args[11]}` : ""}`,
    });
    const k = [...kernels].sort().join(" ");
    for (const w of [`rope_kv_write_${tag}_bf16`, `paged_attention_decode_${tag}_bf16_hd64`]) assert.ok(kernels.has(w), `${w} in ${k}`);
    assert.ok(![...kernels].some((x) => x.startsWith("decode_attention") || x === "rope_kv_write_bf16" || x.startsWith("paged_attention_decode_bf16")), k);
    assert.ok(prefillKernels.has(`paged_attention_prefill_mma_${tag}_bf16_hd64`), [...prefillKernels].join(" "));
    // One byte per element: half the bf16 cache of the same blocks.
    const a = bf16.plan.attributes;
    assert.equal(fused.env.kvLayerBytes, (FUSED_NUM_BLOCKS + 1) * 2 * QUANT_TEST_BUILD.tokensPerBlock * a.numKvHeads * a.headDim);
    bf16.dispose();
    f32.dispose();
  });
}

for (const [name, qc] of [["FP8 KV", { kvCacheQuantAlgo: "FP8" }], ["INT8 KV", { kvCacheQuantAlgo: "INT8" }]] as [string, QuantConfigInput][]) {
  test(`fp8DecodeAttention + fp8FlashPrefill on a fake CUDA device: one fused decode attention launch per layer, flash prefill over the bf16 shadow, the unfused plan's bits: ${name}`, () => {
    const { bf16, f32 } = quantEngines(RAW, 31, qc, 0.1, { calibration: CALIBRATION });
    const tag = qc.kvCacheQuantAlgo === "FP8" ? "fp8kv" : "int8kv";
    const { kernels, prefillKernels, fused } = runFusedSchedule(bf16, f32, {
      unfused: sameAsUnfused,
      cpu: ({ what, got, want }) => {
        const rel = relL2(got.logits, want.logits);
        assert.ok(rel < 0.05, `${what}: logits differ from the CPU session's (rel L2 ${rel.toExponential(2)})`);
      },
      label: (l) => l.kernel,
      fusedOptions: { fp8DecodeAttention: true, fp8FlashPrefill: true },
    });
    const k = [...kernels].sort().join(" ");
    // G = 2 query heads per kv head: the _g4 instantiation.
    assert.ok(kernels.has(`decode_attention_g4_${tag}_bf16_hd64`), k);
    assert.ok(![...kernels].some((x) => x.startsWith("rope_kv_write") || x.startsWith("paged_attention_decode")), k);
    // Prefill: the attended blocks dequantized into the shadow layer, then the bf16 flash kernel over it.
    const pk = [...prefillKernels].sort().join(" ");
    assert.ok(fused.env.kvShadow !== undefined, "a shadow layer");
    assert.ok(prefillKernels.has(`kv_dequant_${tag}_bf16`) && prefillKernels.has("flash_prefill_bf16_hd64"), pk);
    assert.ok(![...prefillKernels].some((x) => x.startsWith("paged_attention_prefill")), pk);
    bf16.dispose();
    f32.dispose();
  });
}

test("fp8DecodeSk + decodeSplitK on a fake CUDA device: FP8-KV decode steps on decode_attention_sk_fp8kv (INT8 KV keeps decode_attention), the unfused plan's bits", () => {
  for (const [algo, tag] of [["FP8", "fp8kv"], ["INT8", "int8kv"]] as const) {
    const { bf16, f32 } = quantEngines(RAW, 31, { kvCacheQuantAlgo: algo }, 0.1, { calibration: CALIBRATION });
    const { kernels } = runFusedSchedule(bf16, f32, {
      unfused: sameAsUnfused,
      cpu: ({ what, got, want }) => {
        const rel = relL2(got.logits, want.logits);
        assert.ok(rel < 0.05, `${what}: logits differ from the CPU session's (rel L2 ${rel.toExponential(2)})`);
      },
      label: (l) => l.kernel,
      fusedOptions: { fp8DecodeAttention: true, fp8FlashPrefill: true, decodeSplitK: true, fp8DecodeSk: true },
    });
    const k = [...kernels].sort().join(" ");
    if (algo === "FP8") assert.ok(kernels.has("decode_attention_sk_fp8kv_bf16_hd64") && !kernels.has(`decode_attention_g4_${tag}_bf16_hd64`), k);
    else assert.ok(kernels.has(`decode_attention_g4_${tag}_bf16_hd64`) && ![...kernels].some((x) => x.startsWith("decode_attention_sk")), k);
    bf16.dispose();
    f32.dispose();
  }
});

test("fp8DecodeSkSmall on a fake CUDA device: decode_attention_sk_fp8kv with splits of at least 64 keys (the split argument's bits 16+), the unfused plan's bits", () => {
  const { bf16, f32 } = quantEngines(RAW, 31, { kvCacheQuantAlgo: "FP8" }, 0.1, { calibration: CALIBRATION });
  const { kernels } = runFusedSchedule(bf16, f32, {
    unfused: sameAsUnfused,
    cpu: ({ what, got, want }) => {
      const rel = relL2(got.logits, want.logits);
      assert.ok(rel < 0.05, `${what}: logits differ from the CPU session's (rel L2 ${rel.toExponential(2)})`);
    },
    // decode_attention_sk's split argument (the target | least keys / 64 << 16).
    label: (l) => l.kernel.startsWith("decode_attention_sk") ? `${l.kernel}/${decodeSkSplitOf(Number(l.args[19])).minKeys}` : l.kernel,
    fusedOptions: { fp8DecodeAttention: true, fp8FlashPrefill: true, decodeSplitK: true, fp8DecodeSk: true, fp8DecodeSkSmall: true },
  });
  const k = [...kernels].sort().join(" ");
  assert.ok(kernels.has(`decode_attention_sk_fp8kv_bf16_hd64/${FP8_DECODE_SK_SMALL_SPLIT}`), k);
  assert.ok(![...kernels].some((x) => x.startsWith("decode_attention_sk") && !x.endsWith(`/${FP8_DECODE_SK_SMALL_SPLIT}`)), k);
  assert.deepEqual(decodeSkSplitOf(decodeSkSplitArg(33, 64)), { target: 33, minKeys: 64 });
  assert.equal(decodeSkSplitArg(33), 33, "the default least keys: the plain target (the kernel's DS_MINK)");
  assert.equal(decodeSkSplitKeys(265, decodeSkSplitArg(33, 64)), 64);
  assert.equal(decodeSkSplitKeys(265, 33), 128);
  // 64-key splits while they number at most (33 + 1) / 2 = 17: spans up to 1,088; longer spans keep the 128-key partition.
  assert.equal(decodeSkSplitKeys(1088, decodeSkSplitArg(33, 64)), 64);
  assert.equal(decodeSkSplitKeys(1089, decodeSkSplitArg(33, 64)), decodeSkSplitKeys(1089, 33));
  assert.equal(decodeSkSplitKeys(2048, decodeSkSplitArg(33, 64)), 128);
  assert.equal(decodeSkSplitKeys(32768, decodeSkSplitArg(33, 64)), 1024, "long spans: the same partition");
  for (let span = 1; span <= 5000; span++) {
    const sz = decodeSkSplitKeys(span, decodeSkSplitArg(33, 64)), nz = Math.ceil(span / sz);
    assert.ok(sz === decodeSkSplitKeys(span, 33) || (sz === 64 && nz <= 17), `span ${span}: ${sz} keys a split`);
    // The grid of any maxLen >= span holds every split at once (graphs: maxSeqLen; eager: the longest span).
    for (const maxLen of [span, 2080]) assert.ok(maxLen < span || decodeSkGeometry(maxLen, 8, 4, 132, 0, 64).numSplits >= nz, `span ${span} maxLen ${maxLen}`);
  }
  assert.equal(decodeSkGeometry(2080, 8, 4, 132, 0, 64).numSplits, 17, "the measured graph grid (llama-3.1-8b, maxSeqLen 2080)");
  assert.equal(decodeSkGeometry(265, 8, 4, 132, 0, 64).numSplits, 5, "an eager step at 265 keys: its 5 splits at once");
  bf16.dispose();
  f32.dispose();
});

for (const [name, qc] of [["FP8 KV", { kvCacheQuantAlgo: "FP8" }], ["INT8 KV", { kvCacheQuantAlgo: "INT8" }]] as [string, QuantConfigInput][]) {
  test(`fp8ShadowRope + fp8FlashPrefill on a fake CUDA device: prefill KV writes fill the shadow, kv_dequant_prefix the other rows, the unfused plan's bits: ${name}`, () => {
    const { bf16, f32 } = quantEngines(RAW, 31, qc, 0.1, { calibration: CALIBRATION });
    const tag = qc.kvCacheQuantAlgo === "FP8" ? "fp8kv" : "int8kv";
    const { kernels, prefillKernels } = runFusedSchedule(bf16, f32, {
      unfused: sameAsUnfused,
      cpu: ({ what, got, want }) => {
        const rel = relL2(got.logits, want.logits);
        assert.ok(rel < 0.05, `${what}: logits differ from the CPU session's (rel L2 ${rel.toExponential(2)})`);
      },
      label: (l) => l.kernel,
      fusedOptions: { fp8DecodeAttention: true, fp8FlashPrefill: true, fp8ShadowRope: true },
    });
    const pk = [...prefillKernels].sort().join(" ");
    assert.ok(prefillKernels.has(`rope_kv_write_shadow_${tag}_bf16`) && prefillKernels.has(`kv_dequant_prefix_${tag}_bf16`), pk);
    assert.ok(!prefillKernels.has(`kv_dequant_${tag}_bf16`) && !prefillKernels.has(`rope_kv_write_${tag}_bf16`), pk);
    // Decode steps (fused attention) keep their kernels.
    assert.ok(kernels.has(`decode_attention_g4_${tag}_bf16_hd64`) && ![...kernels].some((x) => x.startsWith("rope_kv_write_shadow")), [...kernels].join(" "));
    bf16.dispose();
    f32.dispose();
  });
}
