// quantGemv1 (issue 12, session 10): one-row decode steps of W4A16 / W8A16 engines run their quantized linears on
// quant_gemv1 (kernels/quant_gemv1.cu) where every quantized linear fits it, steps of 2..8 rows keep quant_gemv_fused.
// Checked without a GPU: the launch plan (entry points, grids, arities, PDL, the quantTailNorm pair on quant_gemv1's
// per-pair sums of squares) and the fake device's results (tests/cuda_fake_device.ts: quant_gemv1 takes
// quant_gemv_fused's arithmetic, as the kernel's same-bits design promises; bench/quant_gemv1_tune.ts checks the bits
// on a GPU, tests/gpu/quant_gemv1.test.ts the kernels against float64).
import { isPdlKernel, type KernelLaunch, kernelSignature, planLaunches } from "../lib/backends/cuda/launch_plan.ts";
import { quantGemv1Grid } from "../lib/backends/cuda/quant_launch.ts";
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { fakeLaunchEnv, quantEngines, quantTestLlama, relL2, runFusedSchedule, sameAsUnfused } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

/** quantTestLlama at hidden / intermediate 2048: in-features an even number of quant_gemv1 segments for uint4 and uint8. */
const WIDE = { ...quantTestLlama(97), hidden_size: 2048, intermediate_size: 2048, num_attention_heads: 32, num_key_value_heads: 8 };
/**
 * Hidden / intermediate 1024: uint8 only (2 segments of 512); the fake-device runs (the fake's stand-in dequantizes every
 * weight per launch: hidden 2048 takes minutes on two cores). quant_gemv1_u4 shares the stand-in's code with _u8.
 */
const WIDE8 = { ...quantTestLlama(97), hidden_size: 1024, intermediate_size: 1024, num_attention_heads: 16, num_key_value_heads: 4 };
/**
 * Logits vs the float32 CPU session (relative L2). At hidden 1024 the random model's bf16 plans sit 4-6e-2 from float32
 * in steps that never run quant_gemv1 (prefill, 3-sequence decode) too; the bits against the unfused plan are the check.
 */
const LOGITS_TOL = 1e-1, TAIL_TOL = 2e-2;
const FORMATS: [string, QuantConfigInput, "u4" | "u8"][] = [
  ["W4A16 g128 + zero points", { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true }, "u4"],
  ["W8A16 per channel", { quantAlgo: "W8A16" }, "u8"],
];

for (const [name, qc, u] of FORMATS) {
  test(`quantGemv1 plan, ${name}: one-row decode steps on quant_gemv1 (grid, arity, PDL; with quantTailNorm its addnorm / rs pair), 2..8 rows on quant_gemv_fused`, () => {
    const { bf16, f32 } = quantEngines(WIDE, 5, qc);
    f32.dispose();
    let addr = 1n << 40n;
    const weights = new Map<string, bigint>();
    const scratch = 23n << 32n;
    for (const tail of [false, true]) {
      const env = fakeLaunchEnv(bf16, {
        weight: (n) => weights.get(n) ?? (weights.set(n, addr += 1n << 24n), addr),
        batchInvariant: true,
        fusedDecode: true,
        decodeCounters: 21n << 32n,
        pdl: true,
        quantPdl: true,
        quantGemv1: true,
        quantGemv1Blocks: 264,
        ...(tail ? { quantTailNorm: true, quantNormScratch: scratch } : {}),
      });
      for (const T of [1, 2, 8]) {
        const shape = { numTokens: T, numSeqs: T, numRows: T, attention: { kind: "decode" as const, numSplits: 2, splitSize: 128 }, sample: true };
        const ks = planLaunches(env, shape).filter((l): l is KernelLaunch => l.kind === "kernel");
        const q1 = ks.filter((l) => l.kernel.startsWith("quant_gemv1_")), q16 = ks.filter((l) => l.kernel.startsWith("quant_gemv_fused"));
        const L = bf16.plan.attributes.numLayers;
        if (T === 1) {
          assert.equal(q16.length, 0, `T=1: ${q16.map((l) => l.kernel).join(" ")}`);
          assert.equal(q1.length, 4 * L, "T=1: every quantized linear");
          for (const l of q1) {
            assert.equal(l.args.length, kernelSignature(l.kernel).params.length, `${l.kernel} arity`);
            const [n, mode] = [l.args[9] as number, l.args[12] as number];
            assert.deepEqual(l.grid, [quantGemv1Grid(n, mode, 264), 1, 1], `${l.kernel} grid`);
            assert.equal(l.args[8], 1, "m = 1");
            assert.ok(isPdlKernel(l.kernel, true), l.kernel);
          }
          const form = (f: string): number => q1.filter((l) => l.kernel === `quant_gemv1${f}_${u}`).length;
          if (tail) {
            // o_proj of every layer and down_proj of all but the last produce; gate_up and every qkv but the first consume.
            assert.deepEqual([form("_addnorm"), form("_rs"), form("_norm"), form("")], [2 * L - 1, 2 * L - 1, 1, 1], "tail forms");
            for (const p of q1.filter((l) => l.kernel.includes("_addnorm"))) {
              const next = ks[ks.indexOf(p) + 1];
              assert.equal(next.kernel, `quant_gemv1_rs_${u}`, `after op ${p.op}`);
              assert.equal(next.args[0], p.args[13], "the consumer reads the producer's xw");
              assert.equal(next.args[6], scratch, "and its per-pair sums of squares");
              assert.ok(next.pdl, "PDL after the producer");
            }
          } else assert.deepEqual([form("_norm"), form("")], [2 * L, 2 * L], "norm prologues (qkv, gate_up), plain (o, down)");
        } else {
          assert.equal(q1.length, 0, `T=${T}: ${q1.map((l) => l.kernel).join(" ")}`);
          assert.equal(q16.length, 4 * L, `T=${T}: every quantized linear on quant_gemv_fused`);
        }
      }
    }
    bf16.dispose();
  });

  for (const tail of u === "u8" ? [false, true] : []) {
    test(`quantGemv1 on a fake device, ${name}${tail ? ", quantTailNorm" : ""}: the same results as quant_gemv_fused's plan, the CPU session within bf16 tolerance`, () => {
      const { bf16, f32 } = quantEngines(WIDE8, 7, qc);
      let worst = 0;
      const { kernels } = runFusedSchedule(bf16, f32, {
        // A grid of 3 blocks: every warp streams several row pairs.
        fusedOptions: { quantGemv1: 3, quantTailNorm: tail },
        kvSame: !tail,
        unfused: tail
          ? (s) => {
            const rel = relL2(s.got.logits, s.ref.logits);
            assert.ok(rel < TAIL_TOL, `${s.what}: quantGemv1 + quantTailNorm vs unfused logits rel L2 ${rel.toExponential(2)}`);
          }
          : sameAsUnfused,
        cpu: ({ what, got, want }) => {
          const rel = relL2(got.logits, want.logits);
          worst = Math.max(worst, rel);
          assert.ok(rel < LOGITS_TOL, `${what}: logits differ from the CPU session's (rel L2 ${rel.toExponential(2)})`);
        },
        label: (l) => l.kernel,
      });
      const k = [...kernels].sort().join(" ");
      for (const want of tail ? [`quant_gemv1_addnorm_${u}`, `quant_gemv1_rs_${u}`] : [`quant_gemv1_norm_${u}`, `quant_gemv1_${u}`]) {
        assert.ok(kernels.has(want), `${want} in ${k}`);
      }
      assert.ok(kernels.has(tail ? `quant_gemv_fused_rs_${u}` : `quant_gemv_fused_norm_${u}`), `steps of 2..8 rows: ${k}`);
      console.log(`${name}${tail ? ", quantTailNorm" : ""}: logits vs the CPU session, worst rel L2 ${worst.toExponential(2)}`);
      bf16.dispose();
      f32.dispose();
    });
  }
}

test("quantGemv1 leaves engines whose linears do not all fit it on quant_gemv_fused (hidden 128: in-features not whole segments)", () => {
  const { bf16, f32 } = quantEngines(quantTestLlama(101), 3, { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true });
  f32.dispose();
  let addr = 1n << 40n;
  const weights = new Map<string, bigint>();
  const env = fakeLaunchEnv(bf16, {
    weight: (n) => weights.get(n) ?? (weights.set(n, addr += 1n << 24n), addr),
    batchInvariant: true,
    fusedDecode: true,
    decodeCounters: 21n << 32n,
    quantGemv1: true,
  });
  const shape = { numTokens: 1, numSeqs: 1, numRows: 1, attention: { kind: "decode" as const, numSplits: 2, splitSize: 128 }, sample: true };
  const ks = planLaunches(env, shape).filter((l): l is KernelLaunch => l.kind === "kernel").map((l) => l.kernel);
  assert.ok(!ks.some((x) => x.startsWith("quant_gemv1")) && ks.some((x) => x.startsWith("quant_gemv_fused")), ks.join(" "));
  bf16.dispose();
});
