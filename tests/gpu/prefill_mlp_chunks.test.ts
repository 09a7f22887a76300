/**
 * GPU: prefillMlpChunks (issue 16, session 16; skipped without a GPU). A random bf16 Llama whose gate_up GEMM writes
 * 2 × 8192 columns (llama-3.2-1b's width: 1024-row chunks), 2 layers, one prompt of 2048 tokens: with the switch the
 * first layer's gate_up runs as two 1024-row GEMMs, each followed by its rows' silu_mul; the logits must be the default
 * session's bit for bit (batch-invariant GEMMs: each chunk on its M bucket's algorithm, shown to round rows as the
 * reference algorithm does), and a second prompt must still agree (the KV cache the same).
 */
import type { CudaKvCache } from "../../lib/backends/cuda/session.ts";
import { Session } from "../../lib/runtime/session.ts";
import { buildSync } from "../../lib/builder/builder.ts";
import { randomModel } from "../cuda_fake_device.ts";
import { sameBits } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { gpuTest, step } from "./gpu.ts";

gpuTest(
  "session: prefillMlpChunks (gate_up + silu_mul by 1024-row chunks) gives the default session's logits bit for bit at 2048 tokens",
  () => {
    const raw: Record<string, unknown> = {
      vocab_size: 512,
      hidden_size: 256,
      intermediate_size: 8192,
      num_hidden_layers: 2,
      max_position_embeddings: 4096,
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 64,
    };
    const model = randomModel(raw, 16, true, 0.1);
    const engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 1, maxNumTokens: 2048, maxSeqLen: 2112, tokensPerBlock: 32 });
    model.close();
    const sessions = [
      Session.fromSerializedEngine(engine, { backend: "cuda" }),
      Session.fromSerializedEngine(engine, { backend: "cuda", prefillMlpChunks: true }),
    ];
    try {
      const kvs = sessions.map((s) => s.createKvCache(66));
      const blocks = Array.from({ length: 66 }, (_, i) => i);
      const V = raw.vocab_size as number;
      const prompt = Array.from({ length: 2048 }, (_, i) => (i * 131 + 7) % V);
      const run = (ids: number[], pos: number): Float32Array[] =>
        sessions.map((s, i) => {
          const logits = new Float32Array(V);
          s.run(step(ids, pos, blocks), { logits, sampledIds: new Int32Array(1) }, kvs[i]);
          return logits;
        });
      const [a, b] = run(prompt, 0);
      assert.ok(a.some((v) => v !== 0) && a.every(Number.isFinite), "informative logits");
      sameBits(b, a, "prefill 2048: chunks vs default");
      const names = sessions[1].cuda!.profileEagerStep(step(prompt, 0, blocks), kvs[1] as CudaKvCache).launches.map((l) => l.name);
      assert.ok(names.includes("gemm 1024x16384x256"), `the chunked session runs 1024-row gate_up GEMMs: ${[...new Set(names)].join(", ")}`);
      assert.ok(!names.includes("gemm 2048x16384x256"), "no 2048-row gate_up GEMM left");
      const [c, d] = run(prompt.slice(0, 40), 2048);
      sameBits(d, c, "a 40-token chunk after the prompt: chunks vs default");
    } finally {
      for (const s of sessions) s.dispose();
      engine.dispose();
    }
  },
  300_000,
);
