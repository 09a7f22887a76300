// Quantized linears in the fused decode plan (issue 12), run on the fake device of
// tests/cuda_fake_device.ts (no GPU): a small random Llama quantized W4A16 (g128, zero points) and
// W8A16 (per channel) runs prefill and decode steps of 1..8 sequences (graph buckets and eager steps)
// with `fusedDecode` on and off. The stand-ins of quant_gemv_fused* take the documented RMSNorm
// prologue, residual / SiLU·mul epilogues and roundings, so the fused plan must give the unfused plan's
// bits (logits, sampled ids, KV cache), and both must match the float32 CPU session of the same
// quantized model to bf16 tolerance. W4A16 g64 (groups not whole 128-weight superchunks) keeps the
// per-warp GEMV and its separate norm / add launches. The kernels' arithmetic: tests/quant_cuda.test.ts
// on a GPU.
import type { KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { buildSync } from "../lib/builder/builder.ts";
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { FakeCudaSession, maxRelDiff, randomModel, step } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

// In-features 128 / 256 (whole u4 and u8 superchunks), out-features multiples of 16; biases everywhere.
const RAW = {
  vocab_size: 101,
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
/** bf16 activations on the fake device vs the float32 CPU session (as tests/cuda_launch_plan_fused.test.ts). */
const LOGITS_TOL = 4e-2;

for (
  const [name, qc, fusable] of [
    ["W4A16 g128 + zero points", { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true }, true],
    ["W8A16 per channel", { quantAlgo: "W8A16" }, true],
    ["W4A16 g64 (per-warp GEMV, not fused)", { quantAlgo: "W4A16", groupSize: 64 }, false],
  ] as [string, QuantConfigInput, boolean][]
) {
  test(`quantized fused decode plan on a fake device equals the unfused plan and the CPU session: ${name}`, () => {
    const model = randomModel(RAW, 23, true);
    const q = quantizeSync(model, qc);
    const bf16 = buildSync(q, { ...BUILD, backend: "cuda", dtype: "bfloat16" });
    const f32 = buildSync(q, { ...BUILD, backend: "cpu", dtype: "float32" });
    q.close();
    model.close();
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
    const kernels = new Set<string>();
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
      const rel = maxRelDiff(got.logits, want.logits);
      assert.ok(rel < LOGITS_TOL, `${what}: logits differ from the CPU session's (max rel ${rel.toExponential(2)})`);
      if (!prefill) {
        assert.ok(
          fused.lastLaunches.length < plain.lastLaunches.length,
          `${what}: ${fused.lastLaunches.length} fused launches vs ${plain.lastLaunches.length}`,
        );
        for (const l of fused.lastLaunches) {
          if (l.kind === "kernel") kernels.add(`${(l as KernelLaunch).kernel}${l.kernel.startsWith("quant_gemv_fused") ? `/${l.args[12]}` : ""}`);
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
    const u = qc.quantAlgo === "W8A16" ? "u8" : "u4";
    const k = [...kernels].sort().join(" ");
    if (fusable) {
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
