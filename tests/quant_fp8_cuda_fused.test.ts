// FP8 linears in the fused decode plan (issue 14), run on the fake device of tests/cuda_fake_device.ts
// (no GPU; stand-ins in tests/cuda_fake_fp8.ts): a small random Llama quantized FP8 (static per-tensor
// scales) and FP8_PER_CHANNEL_PER_TOKEN runs prefill and decode steps of 1..8 sequences (graph buckets
// and eager steps) with `fusedDecode` on and off. fp8_gemv_fused*_bf16 compute the unfused GEMV's values
// and apply gemv_fused's prologue / epilogues and roundings, so the fused plan must give the unfused
// plan's bits (logits, sampled ids, KV cache), and both must match the float32 CPU session of the same
// quantized model (its fp8Linear emulation) to bf16 tolerance. A third engine also quantizes the lm_head:
// its fused steps take the fp32-logits epilogue (mode 3) where the unfused plan runs fp8_quantize + the
// FP8 GEMM + fp8_scale_f32, so only the KV cache is compared bit for bit there. The kernels' arithmetic
// against the CPU emulation: tests/gpu/fp8_cuda.test.ts on a GPU.
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { maxRelDiff } from "./cuda_fake_device.ts";
import { FP8_LOGITS_TOL, quantEngines, quantTestLlama, relL2, runFusedSchedule, sameAsUnfused } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const RAW = quantTestLlama(112);
const CALIBRATION = [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % (RAW.vocab_size as number))];

for (
  const [name, qc, fp8Head] of [
    ["FP8 (static per-tensor activation scales)", { quantAlgo: "FP8" }, false],
    ["FP8_PER_CHANNEL_PER_TOKEN", { quantAlgo: "FP8_PER_CHANNEL_PER_TOKEN" }, false],
    ["FP8_PER_CHANNEL_PER_TOKEN with an FP8 lm_head", { quantAlgo: "FP8_PER_CHANNEL_PER_TOKEN", excludeModules: [] }, true],
  ] as [string, QuantConfigInput, boolean][]
) {
  test(`FP8 fused decode plan on a fake device equals the unfused plan and the CPU session: ${name}`, () => {
    const { bf16, f32 } = quantEngines(RAW, 31, qc, 0.1, { calibration: CALIBRATION });
    const head = bf16.plan.ops.find((o) => o.type === "linear" && o.out === bf16.plan.attributes.logits);
    assert.equal(head?.type === "linear" && head.weightFormat?.format === "fp8_e4m3", fp8Head, "lm_head quantized as configured");
    const { kernels } = runFusedSchedule(bf16, f32, {
      unfused: (s) => {
        if (!fp8Head || s.prefill) return sameAsUnfused(s);
        const rel = maxRelDiff(s.got.logits, s.ref.logits);
        assert.ok(rel < 1e-2, `${s.what}: fused (mode 3) vs unfused (FP8 GEMM) logits max rel ${rel.toExponential(2)}`);
      },
      cpu: ({ what, got, want }) => {
        const rel = relL2(got.logits, want.logits);
        assert.ok(rel < FP8_LOGITS_TOL, `${what}: logits differ from the CPU session's (rel L2 ${rel.toExponential(2)})`);
      },
      label: (l) => `${l.kernel}${l.kernel.startsWith("fp8_gemv_fused") ? `/${l.args[11]}` : ""}`,
      // With an FP8 head the two plans may sample apart.
      next: (s, r) => fp8Head ? s.want.sampledIds[r] : s.got.ids[r],
    });
    const k = [...kernels].sort().join(" ");
    // Every FP8 linear fuses: norm prologue (qkv; gate_up with SiLU·mul), residual epilogues (o, down); the head's norm too.
    const wanted = ["fp8_gemv_fused_norm_bf16/0", "fp8_gemv_fused_norm_bf16/2", "fp8_gemv_fused_bf16/1"];
    if (fp8Head) wanted.push("fp8_gemv_fused_norm_bf16/3");
    for (const w of wanted) assert.ok(kernels.has(w), `${w} in ${k}`);
    assert.ok(![...kernels].some((x) => x === "fp8_gemv_bf16" || x.startsWith("rmsnorm") || x.startsWith("add_") || x.startsWith("silu")), k);
    bf16.dispose();
    f32.dispose();
  });
}
