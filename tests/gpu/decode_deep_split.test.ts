/**
 * GPU: sampleSplit (the sampler's argmax over 16 blocks a row) — issue 16 item 1, session 10. It claims the same bits as
 * the defaults: a
 * random-weight llama (2 layers, hidden 1024, intermediate 6144 so down_proj takes 2 warps a row, a 32768-entry tied
 * vocabulary so the sampler splits a long
 * row) decodes teacher-forced tokens through CUDA graphs and eagerly, greedy and with temperature / top-k / top-p; the
 * logits must be bitwise the default session's and the sampled ids equal, at 1 and 2 sequences a step.
 */
import { buildSync } from "../../lib/builder/builder.ts";
import type { Engine } from "../../lib/builder/engine.ts";
import { Session, type StepInputs } from "../../lib/runtime/session.ts";
import { randomModel } from "../cuda_fake_device.ts";
import { assert } from "../harness.ts";
import { gpuTest } from "./gpu.ts";

const BS = 32, NB = 20; // tokens per block; blocks per sequence

function inputs(ids: number[], pos: number[], hot: boolean): StepInputs {
  const S = ids.length;
  return {
    tokenIds: Int32Array.from(ids),
    positions: Int32Array.from(pos),
    seqStarts: Int32Array.from({ length: S + 1 }, (_, s) => s),
    blockTables: Int32Array.from({ length: S * NB }, (_, i) => i),
    maxBlocksPerSeq: NB,
    logitRows: Int32Array.from({ length: S }, (_, s) => s),
    sampling: {
      temperature: new Float32Array(S).fill(hot ? 0.9 : 0),
      topK: new Int32Array(S).fill(hot ? 50 : 0),
      topP: new Float32Array(S).fill(hot ? 0.95 : 1),
      minP: new Float32Array(S),
      seed: Uint32Array.from({ length: 2 * S }, (_, i) => 1234 + i),
      step: Int32Array.from({ length: S }, (_, s) => 7 + s),
    },
  };
}

function run(engine: Engine, opts: Record<string, boolean>, S: number, hot: boolean, V: number): { logits: Float32Array[]; ids: number[] } {
  using session = Session.fromSerializedEngine(engine, { backend: "cuda", ...opts });
  const kv = session.createKvCache(S * NB + 1);
  const prompt = Array.from({ length: 40 }, (_, j) => (j * 13 + 5) % 32000);
  // Each sequence's prompt as its own prefill (sequence s in blocks [s * NB, (s + 1) * NB)).
  for (let s = 0; s < S; s++) {
    const p = prompt.map((t) => (t + s) % 32000);
    session.run(
      {
        ...inputs([p[0]], [0], false),
        tokenIds: Int32Array.from(p),
        positions: Int32Array.from(p, (_, j) => j),
        seqStarts: Int32Array.of(0, p.length),
        blockTables: Int32Array.from({ length: NB }, (_, i) => s * NB + i),
        logitRows: Int32Array.of(p.length - 1),
      },
      { sampledIds: new Int32Array(1) },
      kv,
    );
  }
  const logits: Float32Array[] = [];
  const ids: number[] = [];
  for (let k = 0; k < 4; k++) {
    const l = new Float32Array(S * V);
    const out = new Int32Array(S);
    session.run(inputs(Array.from({ length: S }, (_, s) => (97 * k + 11 * s + 3) % 32000), Array.from({ length: S }, () => prompt.length + k), hot), {
      sampledIds: out,
      logits: l,
    }, kv);
    logits.push(l);
    ids.push(...out);
  }
  return { logits, ids };
}

gpuTest("sampleSplit: the default session's logits bitwise and its sampled ids (graphs and eager, 1 and 2 sequences)", () => {
  const raw = {
    vocab_size: 32768,
    hidden_size: 1024,
    intermediate_size: 6144,
    num_hidden_layers: 2,
    num_attention_heads: 16,
    num_key_value_heads: 4,
    head_dim: 64,
    max_position_embeddings: 8192,
    rope_theta: 500000,
    tie_word_embeddings: true,
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
  };
  const model = randomModel(raw, 93, false, 0.03);
  let engine: Engine;
  try {
    engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 2, maxNumTokens: 64, maxSeqLen: NB * BS, tokensPerBlock: BS });
  } finally {
    model.close();
  }
  const V = raw.vocab_size;
  const lines: string[] = [];
  for (const S of [1, 2]) {
    for (const hot of [false, true]) {
      const base = run(engine, {}, S, hot, V);
      for (const cudaGraphs of [true, false]) {
        const b = run(engine, { sampleSplit: true, cudaGraphs }, S, hot, V);
        let diff = 0;
        for (let k = 0; k < base.logits.length; k++) {
          const x = new Uint32Array(base.logits[k].buffer), y = new Uint32Array(b.logits[k].buffer);
          for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) diff++;
        }
        lines.push(
          `${S} seq, ${hot ? "temperature" : "greedy"}, ${cudaGraphs ? "graphs" : "eager"}: ${diff} logits differ; ids ${b.ids.join(",")} vs ${
            base.ids.join(",")
          }`,
        );
        assert.equal(diff, 0, lines[lines.length - 1]);
        assert.deepEqual(b.ids, base.ids, lines[lines.length - 1]);
      }
    }
  }
  console.log(lines.join("\n"));
}, 600_000);
