// Quantized linears in the fused decode plan (issue 12), run on the fake device of
// tests/cuda_fake_device.ts (no GPU): a small random Llama quantized W4A16 (g128, zero points) and
// W8A16 (per channel) runs prefill and decode steps of 1..8 sequences (graph buckets and eager steps)
// with `fusedDecode` on and off. The stand-ins of quant_gemv_fused* take the documented RMSNorm
// prologue, residual / SiLU·mul epilogues and roundings, so the fused plan must give the unfused plan's
// bits (logits, sampled ids, KV cache), and both must match the float32 CPU session of the same
// quantized model to bf16 tolerance. W4A16 g64 (groups not whole 128-weight superchunks) keeps the
// per-warp GEMV and its separate norm / add launches. The kernels' arithmetic: tests/quant_cuda.test.ts
// on a GPU.
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { maxRelDiff } from "./cuda_fake_device.ts";
import { quantEngines, quantTestLlama, runFusedSchedule, sameAsUnfused } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const RAW = quantTestLlama(101);
/** bf16 activations on the fake device vs the float32 CPU session (as tests/cuda_launch_plan_fused.test.ts). */
const LOGITS_TOL = 4e-2;

for (
  const [name, qc, fusable, tailNorm] of [
    ["W4A16 g128 + zero points", { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true }, true, false],
    ["W8A16 per channel", { quantAlgo: "W8A16" }, true, false],
    ["W4A16 g128 + zero points, quantTailNorm", { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true }, true, true],
    ["W8A16 per channel, quantTailNorm", { quantAlgo: "W8A16" }, true, true],
    ["W4A16 g64 (per-warp GEMV, not fused)", { quantAlgo: "W4A16", groupSize: 64 }, false, false],
  ] as [string, QuantConfigInput, boolean, boolean][]
) {
  test(`quantized fused decode plan on a fake device equals the unfused plan and the CPU session: ${name}`, () => {
    const { bf16, f32 } = quantEngines(RAW, 23, qc);
    const { kernels } = runFusedSchedule(bf16, f32, {
      fusedOptions: { quantTailNorm: tailNorm },
      unfused: sameAsUnfused,
      cpu: ({ what, got, want }) => {
        const rel = maxRelDiff(got.logits, want.logits);
        assert.ok(rel < LOGITS_TOL, `${what}: logits differ from the CPU session's (max rel ${rel.toExponential(2)})`);
      },
      label: (l) => `${l.kernel}${l.kernel.startsWith("quant_gemv_fused") ? `/${l.args[12]}` : ""}`,
    });
    const u = qc.quantAlgo === "W8A16" ? "u8" : "u4";
    const k = [...kernels].sort().join(" ");
    if (fusable && tailNorm) {
      // The residual GEMVs (o, down) write the next norm's output; gate_up and every layer's qkv but the first read it
      // (layer 0's qkv keeps the prologue of the norm after the embedding; the last down_proj, whose norm feeds the bf16
      // lm_head, keeps the plain residual epilogue).
      for (const want of [`quant_gemv_fused_norm_${u}/0`, `quant_gemv_fused_${u}/0`, `quant_gemv_fused_${u}/2`, `quant_gemv_fused_addnorm_${u}/1`]) {
        assert.ok(kernels.has(want), `${want} in ${k}`);
      }
      assert.ok(!kernels.has(`quant_gemv_fused_norm_${u}/2`), k);
      assert.ok(![...kernels].some((x) => x.startsWith(`quant_gemv_${u}_m`) || x.startsWith("rmsnorm") || x.startsWith("add_")), k);
    } else if (fusable) {
      // Every quantized linear fuses: norm prologue (qkv, gate_up with SiLU·mul), residual epilogues (o, down).
      for (const want of [`quant_gemv_fused_norm_${u}/0`, `quant_gemv_fused_norm_${u}/2`, `quant_gemv_fused_${u}/1`]) {
        assert.ok(kernels.has(want), `${want} in ${k}`);
      }
      assert.ok(![...kernels].some((x) => x.startsWith(`quant_gemv_${u}_m`) || x.startsWith("rmsnorm") || x.startsWith("add_")), k);
    } else {
      assert.ok([...kernels].some((x) => x.startsWith("quant_gemv_u4_m")) && !k.includes("quant_gemv_fused"), k);
    }
    bf16.dispose();
    f32.dispose();
  });
}
