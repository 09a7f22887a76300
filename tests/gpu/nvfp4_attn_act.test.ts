/**
 * GPU: nvfp4AttnAct (session 15). A random NVFP4 engine (head dim 128, GQA 4) decoded with decode_attention_sk writing
 * o_proj's NVFP4 codes itself (decode_attention_sk_q4_bf16_hd128) gives bitwise the logits of the default path
 * (o_proj's act quantization in its GEMV, or nvfp4_act_mma for 2 rows): a short sequence (one split: the kernel's
 * direct path) and a long one (several splits: the merge), each alone and both in one step (the m8 GEMV reads the
 * negated codes too), graph decode steps.
 */
import { buildSync } from "../../lib/builder/builder.ts";
import type { Engine } from "../../lib/builder/engine.ts";
import { quantizeSync } from "../../lib/quantization/quantize.ts";
import { Session, type StepInputs } from "../../lib/runtime/session.ts";
import { randomModel } from "../cuda_fake_device.ts";
import { sameBits } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { gpuTest } from "./gpu.ts";

const BS = 16, NB = 24; // tokens per block; blocks per sequence (384 positions)

/** One step of sequences `seqs` (ids[i] at positions pos[i], ...), greedy sampling of every sequence's last row. */
function inputs(seqs: number[], ids: number[][], pos: number[]): StepInputs {
  const tok: number[] = [], p: number[] = [], starts = [0];
  for (let i = 0; i < seqs.length; i++) {
    for (let j = 0; j < ids[i].length; j++) {
      tok.push(ids[i][j]);
      p.push(pos[i] + j);
    }
    starts.push(tok.length);
  }
  const n = seqs.length;
  return {
    tokenIds: Int32Array.from(tok),
    positions: Int32Array.from(p),
    seqStarts: Int32Array.from(starts),
    blockTables: Int32Array.from({ length: n * NB }, (_, i) => NB * seqs[Math.floor(i / NB)] + (i % NB)),
    maxBlocksPerSeq: NB,
    logitRows: Int32Array.from({ length: n }, (_, i) => starts[i + 1] - 1),
    sampling: {
      temperature: new Float32Array(n),
      topK: new Int32Array(n),
      topP: new Float32Array(n).fill(1),
      minP: new Float32Array(n),
      seed: new Uint32Array(2 * n),
      step: new Int32Array(n),
    },
  };
}

/** Every decode step's logits: sequence 0 (40 tokens) alone, sequence 1 (300 tokens) alone, then both in one step. */
function run(engine: Engine, nvfp4AttnAct: boolean): Float32Array[] {
  using session = Session.fromSerializedEngine(engine, { backend: "cuda", decodeSplitK: true, cudaGraphs: true, nvfp4AttnAct });
  const kv = session.createKvCache(2 * NB + 1);
  const V = engine.plan.attributes.vocabSize;
  const prompts = [40, 300].map((n, s) => Array.from({ length: n }, (_, j) => (j * 13 + 5 + 7 * s) % V));
  for (let s = 0; s < 2; s++) session.run(inputs([s], [prompts[s]], [0]), { sampledIds: new Int32Array(1) }, kv);
  const out: Float32Array[] = [];
  const len = prompts.map((p) => p.length);
  for (let k = 0; k < 3; k++) {
    for (const seqs of [[0], [1], [0, 1]]) {
      const logits = new Float32Array(seqs.length * V);
      session.run(inputs(seqs, seqs.map((s) => [(11 * s + 3 * k + 1) % V]), seqs.map((s) => len[s])), { sampledIds: new Int32Array(seqs.length), logits }, kv);
      for (const s of seqs) len[s]++;
      out.push(logits);
    }
  }
  return out;
}

gpuTest(
  "nvfp4AttnAct: decode_attention_sk_q4 writes o_proj's NVFP4 codes; the logits are bitwise the default path's (one split and several, 1 and 2 rows)",
  () => {
    const raw = {
      vocab_size: 512,
      hidden_size: 1024,
      intermediate_size: 2048,
      num_hidden_layers: 2,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      head_dim: 128,
      max_position_embeddings: 1024,
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
    };
    const model = randomModel(raw, 77, true, 0.05);
    const calibration = [Array.from({ length: 64 }, (_, i) => (i * 29 + 5) % raw.vocab_size)];
    const q = quantizeSync(model, { quantAlgo: "NVFP4", excludeModules: [] }, { calibration });
    using engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 2, maxNumTokens: 512, maxSeqLen: NB * BS, tokensPerBlock: BS });
    q.close();
    model.close();
    const off = run(engine, false), on = run(engine, true);
    assert.equal(on.length, off.length);
    for (let i = 0; i < on.length; i++) sameBits(on[i], off[i], `decode step ${i} (${["seq 0", "seq 1", "both"][i % 3]})`);
    console.log(`nvfp4AttnAct: ${on.length} decode steps' logits bitwise equal to the default path's`);
  },
  300_000,
);
