/**
 * GPU: prefillGraphs (session 16; skipped without a GPU). A random bf16 Llama in two CUDA sessions, the default and one
 * replaying eager prefill / mixed steps as CUDA graphs: the same prompts (a new prompt of a seen length each time: the
 * graph reads the newly staged inputs), a chunk over a cached prefix and decode steps must give the default's logits
 * bit for bit, from the first (eager) run through the capture to the replays; the graphs are kept per step shape.
 */
import { Session } from "../../lib/runtime/session.ts";
import { buildSync } from "../../lib/builder/builder.ts";
import { randomModel } from "../cuda_fake_device.ts";
import { sameBits } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { gpuTest, step } from "./gpu.ts";

gpuTest("session: prefillGraphs replays give the eager default's logits bit for bit (prompts, chunks, decode steps)", () => {
  const raw: Record<string, unknown> = {
    vocab_size: 512,
    hidden_size: 256,
    intermediate_size: 1024,
    num_hidden_layers: 2,
    max_position_embeddings: 1024,
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 64,
  };
  const model = randomModel(raw, 21, true, 0.1);
  const engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 2, maxNumTokens: 256, maxSeqLen: 512, tokensPerBlock: 32 });
  model.close();
  const sessions = [Session.fromSerializedEngine(engine, { backend: "cuda" }), Session.fromSerializedEngine(engine, { backend: "cuda", prefillGraphs: true })];
  try {
    const V = raw.vocab_size as number;
    const kvs = sessions.map((s) => s.createKvCache(32));
    const blocks = Array.from({ length: 16 }, (_, i) => i);
    const run = (ids: number[], pos: number): Float32Array[] =>
      sessions.map((s, i) => {
        const logits = new Float32Array(V);
        s.run(step(ids, pos, blocks), { logits, sampledIds: new Int32Array(1) }, kvs[i]);
        return logits;
      });
    for (let rep = 0; rep < 4; rep++) {
      const prompt = Array.from({ length: 200 }, (_, i) => (i * 37 + 11 * rep + 5) % V);
      const [a, b] = run(prompt, 0);
      assert.ok(a.some((v) => v !== 0) && a.every(Number.isFinite), "informative logits");
      sameBits(b, a, `prompt ${rep} (200 tokens)`);
      const [c, d] = run(prompt.slice(0, 24), 200);
      sameBits(d, c, `prompt ${rep}: a 24-token chunk over 200 cached`);
      for (let t = 0; t < 2; t++) {
        const [e, f] = run([(rep * 7 + t) % V], 224 + t);
        sameBits(f, e, `prompt ${rep}: decode step ${t}`);
      }
    }
    const n = sessions[1].cuda!.numPrefillGraphs;
    assert.equal(n, 2, "one graph for the 200-token prompts, one for the 24-token chunks (decode steps are not eager)");
    assert.equal(sessions[0].cuda!.numPrefillGraphs, 0);
  } finally {
    for (const s of sessions) s.dispose();
    engine.dispose();
  }
}, 300_000);
