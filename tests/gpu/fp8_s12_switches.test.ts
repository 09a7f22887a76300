/**
 * GPU: session 12's same-bits switches end to end (issue 14; skipped without a GPU). FP8 per-tensor weights (static
 * activation scales) + an FP8 KV cache at hd 128, G 4: twelve fresh prompts of 5..38 tokens in one prefill step
 * (flash_prefill_wg on sm_90), then two decode steps of the twelve sequences (decode_attention_batch4 over the e4m3 cache):
 * the default session vs fp8DecodeAttnQuant (the attention writes o_proj's e4m3 input) + prefillTileScan (the block-wide
 * query-tile lookup, the smaller grid) — every logit bit for bit equal.
 */
import { buildSync } from "../../lib/builder/builder.ts";
import type { StepInputs } from "../../lib/ir/step_io.ts";
import { quantizeSync } from "../../lib/quantization/quantize.ts";
import { Session } from "../../lib/runtime/session.ts";
import { randomModel } from "../cuda_fake_device.ts";
import { quantTestLlama } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { gpuTest } from "./gpu.ts";

/** Sequences `lens[s]` tokens each from position `pos[s]`, sequence s in blocks [s × per, (s + 1) × per). */
function multiStep(ids: number[][], pos: number[], per: number): StepInputs {
  const S = ids.length, starts = [0];
  for (const x of ids) starts.push(starts[starts.length - 1] + x.length);
  return {
    tokenIds: Int32Array.from(ids.flat()),
    positions: Int32Array.from(ids.flatMap((x, s) => x.map((_, i) => pos[s] + i))),
    seqStarts: Int32Array.from(starts),
    blockTables: Int32Array.from({ length: S * per }, (_, i) => i),
    maxBlocksPerSeq: per,
    logitRows: Int32Array.from(starts.slice(1), (e) => e - 1),
    sampling: {
      temperature: new Float32Array(S),
      topK: new Int32Array(S),
      topP: new Float32Array(S).fill(1),
      minP: new Float32Array(S),
      seed: new Uint32Array(2 * S),
      step: new Int32Array(S),
    },
  };
}

gpuTest(
  "session: fp8DecodeAttnQuant + prefillTileScan give the default session's logits bit for bit (12 prompts, two 12-row decode steps)",
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
    const model = randomModel(raw, 29, true, 0.1);
    const q = quantizeSync(model, { quantAlgo: "FP8", kvCacheQuantAlgo: "FP8" }, { calibration: [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % V)] });
    const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 16, maxNumTokens: 512, maxSeqLen: 64, tokensPerBlock: 4 });
    q.close();
    model.close();
    const S = 12, per = 16;
    const sessions = [false, true].map((on) => Session.fromSerializedEngine(engine, { backend: "cuda", fp8DecodeAttnQuant: on, prefillTileScan: on }));
    try {
      const kvs = sessions.map((s) => s.createKvCache(S * per + 1));
      const prompts = Array.from({ length: S }, (_, s) => Array.from({ length: 5 + 3 * s }, (_, i) => (s * 31 + i * 7 + 3) % V));
      let next: number[] = [];
      const run = (what: string, inp: StepInputs): void => {
        const l = sessions.map(() => new Float32Array(S * V)), ids = sessions.map(() => new Int32Array(S));
        sessions.forEach((x, i) => x.run(inp, { logits: l[i], sampledIds: ids[i] }, kvs[i]));
        let off = 0;
        for (let i = 0; i < l[0].length; i++) if (!Object.is(l[0][i], l[1][i])) off++;
        assert.equal(off, 0, `${what}: ${off} of ${l[0].length} logits differ from the default session's`);
        assert.ok(l[0].some((v) => v !== 0) && l[0].every(Number.isFinite), `${what}: finite, non-zero logits`);
        next = Array.from(ids[0]);
      };
      run("prefill", multiStep(prompts, prompts.map(() => 0), per));
      for (let d = 0; d < 2; d++) run(`decode ${d}`, multiStep(next.map((t) => [t]), prompts.map((p) => p.length + d), per));
    } finally {
      for (const s of sessions) s.dispose();
      engine.dispose();
    }
  },
  300_000,
);
