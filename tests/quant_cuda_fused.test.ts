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
import { quantEngines, quantTestLlama, relL2, runFusedSchedule, sameAsUnfused } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const RAW = quantTestLlama(101);
/** bf16 activations on the fake device vs the float32 CPU session (as tests/cuda_launch_plan_fused.test.ts). */
const LOGITS_TOL = 4e-2;
/**
 * quantTailNorm's logits vs the unfused plan's (relative L2): x rounded to bf16 before its 1 / rms instead of after.
 * Measured 1.1e-2 (u4, u8) while the unfused plan itself is 1.8-2.4e-2 from the float32 CPU session; the CPU bound
 * (LOGITS_TOL) holds for the fused plan too.
 */
const TAIL_TOL = 2e-2;

for (
  const [name, qc, fusable, tailNorm, fast, pairX, pairDown] of [
    ["W4A16 g128 + zero points", { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true }, true, false],
    ["W8A16 per channel", { quantAlgo: "W8A16" }, true, false],
    ["W4A16 g128 + zero points, quantTailNorm", { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true }, true, true],
    // quantGemvFast: the same launches on the quant_gemv_fast* entry points (the stand-ins compute them alike).
    ["W4A16 g128 + zero points, quantTailNorm, quantGemvFast", { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true }, true, true, true],
    ["W8A16 per channel, quantTailNorm", { quantAlgo: "W8A16" }, true, true],
    ["W4A16 g64 (per-warp GEMV, not fused)", { quantAlgo: "W4A16", groupSize: 64 }, false, false],
    // quantGemvFast on the shapes the session-12 A/Bs did not run: u8 groups of one superchunk with zero points (paired
    // scale / zero-point loads), u4 per channel; groups below a superchunk keep the per-warp GEMV.
    ["W8A16 g64 + zero points, quantGemvFast", { quantAlgo: "W8A16", groupSize: 64, hasZeroPoint: true }, true, false, true],
    ["W4A16 per channel + zero points, quantTailNorm, quantGemvFast", { quantAlgo: "W4A16", hasZeroPoint: true }, true, true, true],
    ["W4A16 g32 (per-warp GEMV, not fused), quantGemvFast", { quantAlgo: "W4A16", groupSize: 32 }, false, false, true],
    // quantGemvPairX: the tailNorm pairs of two uint4 linears on quant_gemv_fastx_{addnorm,rs}_u4 (the norm's `out` in the
    // mma's pair order; the stand-ins permute it too); u8 keeps quant_gemv_fast*.
    [
      "W4A16 g128 + zero points, quantTailNorm, quantGemvFast + quantGemvPairX",
      { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true },
      true,
      true,
      true,
      true,
    ],
    ["W8A16 per channel, quantTailNorm, quantGemvFast + quantGemvPairX", { quantAlgo: "W8A16" }, true, true, true, false],
    // quantGemvPairDown: the gate_up → down pairs too (quant_gemv_fastxx*: SiLU·mul out in pair order).
    [
      "W4A16 g128 + zero points, quantTailNorm, quantGemvFast + quantGemvPairX + quantGemvPairDown",
      { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true },
      true,
      true,
      true,
      true,
      true,
    ],
  ] as [string, QuantConfigInput, boolean, boolean, boolean?, boolean?, boolean?][]
) {
  test(`quantized fused decode plan on a fake device equals the unfused plan and the CPU session: ${name}`, () => {
    const { bf16, f32 } = quantEngines(RAW, 23, qc);
    const { kernels, fused } = runFusedSchedule(bf16, f32, {
      fusedOptions: { quantTailNorm: tailNorm, quantGemvFast: !!fast, ...(pairX !== undefined ? { quantGemvPairX: true, quantGemvPairDown: !!pairDown } : {}) },
      // quantTailNorm: x = bf16(r · w) scaled by 1 / rms after the product instead of bf16(r · w / rms): within bf16
      // rounding of x, so the logits move a little, the KV cache too.
      kvSame: !tailNorm,
      unfused: tailNorm
        ? (s) => {
          const rel = relL2(s.got.logits, s.ref.logits);
          assert.ok(rel < TAIL_TOL, `${s.what}: fused (quantTailNorm) vs unfused logits rel L2 ${rel.toExponential(2)}`);
        }
        : sameAsUnfused,
      cpu: ({ what, got, want }) => {
        const rel = maxRelDiff(got.logits, want.logits);
        assert.ok(rel < LOGITS_TOL, `${what}: logits differ from the CPU session's (max rel ${rel.toExponential(2)})`);
      },
      // quantGemvFast's entry points are named as quant_gemv_fused's below.
      label: (l) =>
        `${l.kernel.replace(/^quant_gemv_fast(xx?)?_/, "quant_gemv_fused_")}${/^quant_gemv_(fused|fast|fastxx?)_/.test(l.kernel) ? `/${l.args[12]}` : ""}`,
    });
    if (fast !== undefined) {
      const names = fused.lastLaunches.filter((l) => l.kind === "kernel").map((l) => (l as { kernel: string }).kernel);
      assert.ok(names.some((x) => /^quant_gemv_fast(xx?)?_/.test(x)) === fusable && !names.some((x) => x.startsWith("quant_gemv_fused")), names.join(" "));
      assert.ok(names.some((x) => /^quant_gemv_fastxx?_/.test(x)) === !!pairX, names.join(" "));
      assert.ok(names.some((x) => x.startsWith("quant_gemv_fastxx_")) === !!pairDown, names.join(" "));
    }
    const u = qc.quantAlgo === "W8A16" ? "u8" : "u4";
    const k = [...kernels].sort().join(" ");
    if (fusable && tailNorm) {
      // The residual GEMVs (o, down) write the next norm's x · weight and sums of squares; gate_up and every layer's qkv
      // but the first scale by the rms (layer 0's qkv keeps the prologue of the norm after the embedding; the last
      // down_proj, whose norm feeds the bf16 lm_head, keeps the plain residual epilogue).
      for (const want of [`quant_gemv_fused_norm_${u}/0`, `quant_gemv_fused_addnorm_${u}/1`]) {
        assert.ok(kernels.has(want), `${want} in ${k}`);
      }
      assert.ok(!kernels.has(`quant_gemv_fused_norm_${u}/2`) && kernels.has(`quant_gemv_fused_rs_${u}/2`) && kernels.has(`quant_gemv_fused_rs_${u}/0`), k);
      // In every layer: 2L - 1 producers and as many consumers in the last decode step.
      const L = bf16.plan.attributes.numLayers,
        last = fused.lastLaunches.filter((l) => l.kind === "kernel").map((l) =>
          (l as { kernel: string }).kernel.replace(/^quant_gemv_fast(xx?)?_/, "quant_gemv_fused_")
        );
      assert.equal(last.filter((x) => x.startsWith("quant_gemv_fused_addnorm")).length, 2 * L - 1, last.join(" "));
      assert.equal(last.filter((x) => x.startsWith("quant_gemv_fused_rs")).length, 2 * L - 1, last.join(" "));
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
