/**
 * GPU: session 11's FP8 prefill switches end to end (issue 14; skipped without a GPU). FP8 per-tensor weights (static
 * activation scales) + an FP8 KV cache at hd 128, G 4 (flash_prefill_wg on sm_90): a prompt, a chunk over its cached
 * prefix and two decode steps in four CUDA sessions — the default; `r` = fp8GemmResidual (the FP8 o_proj / down GEMMs add
 * into the residual: one rounding of product + residual, bitwise or within bf16 rounding of the separate add); `all` = r +
 * fp8FreshPrompt, fp8FlatQuant, fp8AttnQuant, fp8PruneLastLayer (each the same bytes: must be r's logits bit
 * for bit); `fast` = all + fp8FastSilu (the hardware exp / division: within rounding) — and the float32 CPU engine.
 */
import { Session } from "../../lib/runtime/session.ts";
import { quantEngines, quantTestLlama, relL2 } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { gpuTest, step } from "./gpu.ts";

gpuTest(
  "session: FP8 prefill switches (fp8GemmResidual, fp8FreshPrompt, fp8FlatQuant, fp8AttnQuant, fp8PruneLastLayer, fp8FastSilu) vs the default CUDA session and the CPU engine",
  () => {
    const raw: Record<string, unknown> = {
      ...quantTestLlama(112),
      hidden_size: 512,
      intermediate_size: 1024,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 128,
    };
    const V = raw.vocab_size as number;
    const calib = [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % V)];
    const { bf16, f32 } = quantEngines(raw, 23, { quantAlgo: "FP8", kvCacheQuantAlgo: "FP8" }, 0.1, { calibration: calib });
    const all = { fp8GemmResidual: true, fp8FreshPrompt: true, fp8FlatQuant: true, fp8AttnQuant: true, fp8PruneLastLayer: true };
    const names = ["default", "r", "all", "fast"] as const;
    const sessions = [
      Session.fromSerializedEngine(bf16, { backend: "cuda" }),
      Session.fromSerializedEngine(bf16, { backend: "cuda", fp8GemmResidual: true }),
      Session.fromSerializedEngine(bf16, { backend: "cuda", ...all }),
      Session.fromSerializedEngine(bf16, { backend: "cuda", ...all, fp8FastSilu: true }),
    ];
    const cpu = Session.fromSerializedEngine(f32, { backend: "cpu" });
    try {
      assert.ok(sessions[2].cuda!.pruneLastLayer, "fp8PruneLastLayer: the FP8 plan prunes its last layer");
      const kvs = sessions.map((s) => s.createKvCache(40)), kvC = cpu.createKvCache(40);
      const blocks = Array.from({ length: 40 }, (_, i) => i);
      const prompt = Array.from({ length: 70 }, (_, i) => (i * 37 + 11) % V);
      const report: string[] = [];
      const check = (what: string, ids: number[], pos: number): number => {
        const l = names.map(() => new Float32Array(V)), s = names.map(() => new Int32Array(1));
        sessions.forEach((x, i) => x.run(step(ids, pos, blocks), { logits: l[i], sampledIds: s[i] }, kvs[i]));
        const c = new Float32Array(V);
        cpu.run(step(ids, pos, blocks), { logits: c, sampledIds: new Int32Array(1) }, kvC);
        const eBC = relL2(l[0], c), eR = relL2(l[1], l[0]);
        report.push(
          `${what}: r vs default ${eR.toExponential(2)}, all vs r ${relL2(l[2], l[1]).toExponential(2)}, fast vs all ${
            relL2(l[3], l[2]).toExponential(2)
          }; default vs CPU ${eBC.toExponential(2)}, fast vs CPU ${relL2(l[3], c).toExponential(2)}`,
        );
        const bits = (a: Float32Array, b: Float32Array) => a.every((v, i) => Object.is(v, b[i]));
        assert.ok(bits(l[2], l[1]), `${what}: the same-bytes switches change the logits (rel L2 ${relL2(l[2], l[1])})`);
        for (const [i, e] of [[1, eR], [3, relL2(l[3], l[0])]] as const) {
          assert.ok(e < Math.max(2e-2, 1.5 * eBC), `${what}: ${names[i]} logits rel L2 ${e} vs the default session (default vs CPU ${eBC})`);
        }
        return s[2][0];
      };
      check("prefill 64", prompt.slice(0, 64), 0);
      let next = check("chunk 6 over 64 cached", prompt.slice(64, 70), 64);
      for (let i = 0; i < 2; i++) next = check(`decode ${i}`, [next], 70 + i);
      console.log(`session 11 FP8 prefill switches: ${report.join("; ")}`);
    } finally {
      for (const s of sessions) s.dispose();
      cpu.dispose();
      bf16.dispose();
      f32.dispose();
    }
  },
  300_000,
);
