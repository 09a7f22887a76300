/**
 * GPU: `batchGemm` (bf16 linears of decode steps of 9..64 sequences on batch_gemm_*; skipped without a GPU). A random
 * Llama (hidden 256, intermediate 512, vocab 211: a lm_head column block past the vocabulary) prefills 52 prompts one
 * at a time into two KV caches of one session, then decodes teacher-forced steps of the first 12, 20 and all 52
 * sequences (the 16-, 32- and 64-row tiles): every shared sequence's logits bitwise equal in the three steps (batch
 * invariance among steps of more than 8 sequences), and within bf16 rounding of the session without the switch
 * (cuBLASLt), whose own steps of 12 and 52 are reported beside it.
 */
import { buildSync } from "../../lib/builder/builder.ts";
import { Session } from "../../lib/runtime/session.ts";
import { randomModel, step } from "../cuda_fake_device.ts";
import { assert } from "../harness.ts";
import { gpuTest } from "./gpu.ts";

const RAW = {
  vocab_size: 211,
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 64,
  max_position_embeddings: 2048,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
};

gpuTest("batchGemm: a sequence's decode logits are the same bits in steps of 12, 20 and 52 sequences; close to cuBLASLt's", () => {
  const model = randomModel(RAW, 47, true, 0.15);
  const V = RAW.vocab_size;
  using engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 64, maxNumTokens: 2048, maxSeqLen: 256, tokensPerBlock: 16 });
  model.close();
  const on = Session.fromSerializedEngine(engine, { backend: "cuda", batchGemm: true });
  const off = Session.fromSerializedEngine(engine, { backend: "cuda", batchGemm: false });
  try {
    if (!on.cuda!.batchGemm) {
      console.log("batchGemm: not sm_90+ (thread-block clusters), the session ignores the switch; nothing to compare");
      return;
    }
    const N = 52, maxBlocks = 8;
    const seqs = Array.from({ length: N }, (_, s) => ({
      ids: Array.from({ length: 3 + ((s * 37) % 60) }, (_, j) => (s * 31 + j * 7 + 1) % V),
      blocks: Array.from({ length: maxBlocks }, (_, j) => s * maxBlocks + j),
    }));
    // Every prompt alone (the same prefill steps for every cache), so the caches hold the same bits.
    const caches = [on, off].map((sess) => {
      const kv = sess.createKvCache(N * maxBlocks);
      for (const s of seqs) {
        const logits = new Float32Array(V), ids = new Int32Array(1);
        sess.run(step([{ ids: s.ids, pos: 0, blocks: s.blocks }], maxBlocks), { logits, sampledIds: ids }, kv);
      }
      return kv;
    });
    // Teacher-forced decode steps over the first `n` sequences (positions = prompt lengths: nothing of the
    // steps is written where another step reads).
    const decode = (sess: Session, kv: ReturnType<Session["createKvCache"]>, n: number, tok: number): Float32Array => {
      const logits = new Float32Array(n * V), ids = new Int32Array(n);
      sess.run(step(seqs.slice(0, n).map((s, i) => ({ ids: [(tok + 13 * i) % V], pos: s.ids.length, blocks: s.blocks })), maxBlocks), {
        logits,
        sampledIds: ids,
      }, kv);
      return logits;
    };
    const diffs = (a: Float32Array, b: Float32Array, rows: number): number => {
      let d = 0;
      for (let i = 0; i < rows * V; i++) if (a[i] !== b[i]) d++;
      return d;
    };
    for (const tok of [5, 77]) {
      const on52 = decode(on, caches[0], 52, tok), on20 = decode(on, caches[0], 20, tok), on12 = decode(on, caches[0], 12, tok);
      assert.equal(diffs(on12, on52, 12), 0, `token ${tok}: 12 vs 52 sequences, logits differ`);
      assert.equal(diffs(on20, on52, 20), 0, `token ${tok}: 20 vs 52 sequences, logits differ`);
      const off52 = decode(off, caches[1], 52, tok), off12 = decode(off, caches[1], 12, tok);
      let num = 0, den = 0;
      for (let i = 0; i < on52.length; i++) num += (on52[i] - off52[i]) ** 2, den += off52[i] ** 2;
      const rel = Math.sqrt(num / den);
      console.log(
        `batchGemm token ${tok}: relative difference to cuBLASLt ${rel.toExponential(2)}; cuBLASLt 12 vs 52: ${diffs(off12, off52, 12)} logits differ`,
      );
      assert.ok(rel < 2e-2, `token ${tok}: relative difference to cuBLASLt ${rel}`);
    }
  } finally {
    on.dispose();
    off.dispose();
  }
}, 300_000);
