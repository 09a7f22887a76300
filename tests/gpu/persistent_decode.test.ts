/**
 * GPU: the persistent decode kernel (`persistentDecode`, issue 16 item 1, session 9: kernels/decode_persistent.cu runs
 * every decoder layer of a one-token decode step in one launch). A random-weight model of llama-3.2-1b's layer shapes
 * (2 layers, small vocabulary) decodes teacher-forced tokens at several context lengths (one attention split per q head,
 * two, four), through CUDA graphs (and eagerly at one length): its logits must match the default fused launches' within
 * bf16 tolerance (the attention rounds differently), and the session must really have taken the persistent path (both
 * sessions run with batchInvariant off, which the persistent kernel needs); with batchInvariant on it must not take it.
 */
import { buildSync } from "../../lib/builder/builder.ts";
import type { Engine } from "../../lib/builder/engine.ts";
import { Session, type StepInputs } from "../../lib/runtime/session.ts";
import { randomModel } from "../cuda_fake_device.ts";
import { assert } from "../harness.ts";
import { gpuProbe, gpuTest } from "./gpu.ts";
import { device } from "./gpu.ts";
import { test } from "../harness.ts";

const BS = 32, NB = 150; // tokens per block; blocks per sequence (4,800 positions)

function inputs(ids: number[], pos: number): StepInputs {
  return {
    tokenIds: Int32Array.from(ids),
    positions: Int32Array.from(ids, (_, j) => pos + j),
    seqStarts: Int32Array.from([0, ids.length]),
    blockTables: Int32Array.from({ length: NB }, (_, i) => (i * 37) % NB), // shuffled blocks
    maxBlocksPerSeq: NB,
    logitRows: Int32Array.from([ids.length - 1]),
    sampling: {
      temperature: new Float32Array(1),
      topK: new Int32Array(1),
      topP: new Float32Array(1).fill(1),
      minP: new Float32Array(1),
      seed: new Uint32Array(2),
      step: new Int32Array(1),
    },
  };
}

/** Logits of `steps` teacher-forced decode steps after a prompt of `promptLen` tokens. */
function run(engine: Engine, opts: Record<string, boolean>, promptLen: number, forced: number[], V: number): { logits: Float32Array[]; persistent: boolean } {
  using session = Session.fromSerializedEngine(engine, { backend: "cuda", ...opts });
  const kv = session.createKvCache(NB + 1);
  const prompt = Array.from({ length: promptLen }, (_, j) => (j * 13 + 5) % V);
  session.run(inputs(prompt, 0), { sampledIds: new Int32Array(1) }, kv);
  const logits: Float32Array[] = [];
  forced.forEach((id, k) => {
    const l = new Float32Array(V);
    session.run(inputs([id], promptLen + k), { sampledIds: new Int32Array(1), logits: l }, kv);
    logits.push(l);
  });
  return { logits, persistent: !!(session.cuda as { persistentDecode?: boolean }).persistentDecode };
}

const hopper = gpuProbe.ok && device().arch === "sm_90";
const pdTest = hopper ? gpuTest : test.skipIf(gpuProbe.ok ? "the persistent decode kernel needs sm_90 (TMA bulk copies)" : "no GPU", true);

pdTest("persistent decode: llama-3.2-1b-shaped layers in one launch give the per-layer launches' logits (graphs and eager)", () => {
  const raw = {
    vocab_size: 512,
    hidden_size: 2048,
    intermediate_size: 8192,
    num_hidden_layers: 2,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    max_position_embeddings: 8192,
    rope_theta: 500000,
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
  };
  const model = randomModel(raw, 91, false, 0.03);
  let engine: Engine;
  try {
    engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 1, maxNumTokens: 4608, maxSeqLen: NB * BS, tokensPerBlock: BS });
  } finally {
    model.close();
  }
  const V = raw.vocab_size;
  const forced = [11, 230, 97, 402];
  const lines: string[] = [];
  let worst = 0;
  for (const promptLen of [1, 300, 4400]) {
    const base = run(engine, { persistentDecode: false, batchInvariant: false }, promptLen, forced, V);
    for (const cudaGraphs of promptLen === 300 ? [true, false] : [true]) {
      const pd = run(engine, { persistentDecode: true, batchInvariant: false, cudaGraphs }, promptLen, forced, V);
      assert.ok(pd.persistent && !base.persistent, "the session with persistentDecode took the persistent path, the other did not");
      let w = 0;
      for (let k = 0; k < forced.length; k++) {
        let mx = 0, d = 0;
        for (let i = 0; i < V; i++) {
          mx = Math.max(mx, Math.abs(base.logits[k][i]));
          d = Math.max(d, Math.abs(base.logits[k][i] - pd.logits[k][i]));
        }
        assert.ok(Number.isFinite(d), `prompt ${promptLen}: finite logits`);
        w = Math.max(w, d / mx);
      }
      lines.push(`prompt ${promptLen} ${cudaGraphs ? "graphs" : "eager "}: persistent vs per-layer logits max |diff| / max |logit| ${w.toExponential(2)}`);
      worst = Math.max(worst, w);
    }
  }
  // batchInvariant (the default) keeps the per-layer launches: the persistent kernel's sums round differently.
  assert.ok(!run(engine, { persistentDecode: true }, 8, forced.slice(0, 1), V).persistent, "not with batchInvariant");
  console.log(lines.join("\n"));
  assert.ok(worst < 2e-2, `worst ${worst.toExponential(2)}`);
}, 600_000);
