/**
 * GPU: the MLP chunking switches (issue 16, session 16; skipped without a GPU). A random bf16 Llama whose gate_up GEMM
 * writes 2 × 8192 columns (llama-3.2-1b's width), 2 layers, one prompt of 2048 tokens:
 * - prefillMlpChunks: the first layer's gate_up runs as two 1024-row GEMMs, each followed by its rows' silu_mul; the
 *   logits must be the default session's bit for bit (each chunk on its M bucket's batch-invariant algorithm) and a
 *   40-token chunk after the prompt must agree too (the KV cache the same).
 * - prefillMlpColChunks: two column chunks (a gate and an up GEMM of 4096 rows of the weight each, silu_mul_split_bf16)
 *   in steps of 1024 rows or more; the chunk GEMMs hold to the whole-width reference algorithm's bits (GemmArgs.refN),
 *   so the logits must be the default's bits, at 2048 tokens and in a 1200-row step of two prompts.
 */
import type { CudaKvCache } from "../../lib/backends/cuda/session.ts";
import { Session } from "../../lib/runtime/session.ts";
import type { StepInputs } from "../../lib/ir/step_io.ts";
import { buildSync } from "../../lib/builder/builder.ts";
import { randomModel } from "../cuda_fake_device.ts";
import { relL2, sameBits } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { gpuTest, step } from "./gpu.ts";

const RAW: Record<string, unknown> = {
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

/** Two prompts in one step: sequence 0 in blocks 0.., sequence 1 in blocks `per`..; both last rows are logits rows. */
function twoPrompts(a: number[], b: number[], per: number): StepInputs {
  const one = step([...a, ...b], 0, []);
  return {
    ...one,
    positions: Int32Array.from([...a.map((_, i) => i), ...b.map((_, i) => i)]),
    seqStarts: Int32Array.of(0, a.length, a.length + b.length),
    blockTables: Int32Array.from({ length: 2 * per }, (_, i) => i),
    maxBlocksPerSeq: per,
    logitRows: Int32Array.of(a.length - 1, a.length + b.length - 1),
    sampling: {
      temperature: new Float32Array(2),
      topK: new Int32Array(2),
      topP: new Float32Array(2).fill(1),
      minP: new Float32Array(2),
      seed: new Uint32Array(4),
      step: new Int32Array(2),
    },
  };
}

gpuTest(
  "session: prefillMlpChunks and prefillMlpColChunks give the default's logits bit for bit (2048 tokens; two prompts in 1200 rows)",
  () => {
    const model = randomModel(RAW, 16, true, 0.1);
    const engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 2, maxNumTokens: 2560, maxSeqLen: 2112, tokensPerBlock: 32 });
    model.close();
    const sessions = [
      Session.fromSerializedEngine(engine, { backend: "cuda" }),
      Session.fromSerializedEngine(engine, { backend: "cuda", prefillMlpChunks: true }),
      Session.fromSerializedEngine(engine, { backend: "cuda", prefillMlpColChunks: true }),
    ];
    try {
      const kvs = sessions.map((s) => s.createKvCache(140));
      const blocks = Array.from({ length: 66 }, (_, i) => i);
      const V = RAW.vocab_size as number;
      const prompt = Array.from({ length: 2048 }, (_, i) => (i * 131 + 7) % V);
      const run = (inp: StepInputs, rows = 1): Float32Array[] =>
        sessions.map((s, i) => {
          const logits = new Float32Array(rows * V);
          s.run(inp, { logits, sampledIds: new Int32Array(rows) }, kvs[i]);
          return logits;
        });
      const [a, b, c] = run(step(prompt, 0, blocks));
      assert.ok(a.some((v) => v !== 0) && a.every(Number.isFinite), "informative logits");
      sameBits(b, a, "prefill 2048: chunks vs default");
      console.log(`prefill 2048: cols vs default rel L2 ${relL2(c, a).toExponential(2)}`);
      sameBits(c, a, "prefill 2048: cols vs default");
      const names = (i: number): string[] => sessions[i].cuda!.profileEagerStep(step(prompt, 0, blocks), kvs[i] as CudaKvCache).launches.map((l) => l.name);
      const rowNames = names(1), colNames = names(2);
      assert.ok(rowNames.includes("gemm 1024x16384x256"), `the chunked session runs 1024-row gate_up GEMMs: ${[...new Set(rowNames)].join(", ")}`);
      assert.ok(!rowNames.includes("gemm 2048x16384x256"), "no 2048-row gate_up GEMM left");
      assert.equal(colNames.filter((n) => n === "gemm 2048x4096x256").length, 4, `column chunks: ${[...new Set(colNames)].join(", ")}`);
      assert.ok(colNames.includes("silu_mul_split_bf16"));
      const [a2, b2] = run(step(prompt.slice(0, 40), 2048, blocks));
      sameBits(b2, a2, "a 40-token chunk after the prompt: chunks vs default");
      // Column chunks change no bits in a 1200-row step of two prompts either (chunked: 1200 rows >= 1024), so a prompt's
      // logits there depend on the other prompt exactly as the default session's do (tests/gpu/prefill_batch_invariance).
      const p1 = prompt.slice(5, 305), p2 = prompt.slice(900, 1800);
      const both = run(twoPrompts(p1, p2, 66), 2);
      sameBits(both[2], both[0], "two prompts in a 1200-row step: cols vs default");
      sameBits(both[1], both[0], "two prompts in a 1200-row step: chunks vs default");
    } finally {
      for (const s of sessions) s.dispose();
      engine.dispose();
    }
  },
  300_000,
);
