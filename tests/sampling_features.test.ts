// Sampling features on the real stories260k model through a host-side decode loop built from the
// executor's pieces (processLogits → sampleRow → tokenLogprobs → StopChecker): the loop the
// executor runs for requests that need host processing. Each test fails without its feature.
import * as fs from "node:fs";
import { argmax, sampleRow, type SamplingInputs } from "../lib/ir/sampling.ts";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import { needsHostProcessing, processLogits, resolveBadWords } from "../lib/executor/logits_processor.ts";
import { logSoftmax, type TokenLogprobs, tokenLogprobs } from "../lib/executor/logprobs.ts";
import { StopChecker } from "../lib/executor/stop_checker.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { ModelRunner } from "../lib/runtime/model_runner.ts";
import { assert, sharedDir, test } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { prompt_ids: number[]; greedy_new_ids: number[] };
const tok = LlmTokenizer.fromDir(dir);
const EOS = [2];
let cached: Engine | null = null;
function engine(): Engine {
  if (cached) return cached;
  const model = AutoModelForCausalLM.fromHuggingFace(dir);
  try {
    cached = buildSync(model, { maxBatchSize: 8, maxNumTokens: 512 });
    return cached;
  } finally {
    model.close();
  }
}

interface Req {
  readonly prompt: readonly number[];
  readonly p: SamplingParams;
  readonly seqIndex?: number;
  readonly eosIds?: readonly number[];
  readonly badWordIds?: number[][];
}
interface Result {
  readonly ids: number[];
  readonly text: string;
  readonly logprobs: TokenLogprobs[];
  readonly cumulativeLogprob: number;
  readonly finishReason: "stop" | "length";
  readonly stopReason: number | string | null;
}

/** Decodes a batch of requests step by step; every step runs all live requests in one forward. */
function hostGenerate(runner: ModelRunner, reqs: readonly Req[]): Result[] {
  const V = runner.vocabSize;
  const st = reqs.map((r) => ({
    ids: [] as number[],
    text: "",
    logprobs: [] as TokenLogprobs[],
    cum: 0,
    done: null as null | { reason: "stop" | "length"; stopReason: number | string | null },
    checker: new StopChecker(r.p, r.eosIds ?? EOS),
  }));
  for (;;) {
    const live = reqs.map((_, i) => i).filter((i) => !st[i].done);
    if (live.length === 0) break;
    const out = runner.generate(live.map((i) => [...reqs[i].prompt, ...st[i].ids]), { maxNewTokens: 1, endId: -1, outputGenerationLogits: true });
    live.forEach((i, k) => {
      const r = reqs[i], s = st[i];
      const row = out.generationLogits![k][0];
      if (needsHostProcessing(r.p)) {
        processLogits(row, r.p, { promptIds: r.prompt, outputIds: s.ids, requestId: i, seqIndex: r.seqIndex ?? 0 }, r.eosIds ?? EOS, r.badWordIds);
      }
      const [lo, hi] = r.p.seedWords(r.seqIndex ?? 0);
      const inputs: SamplingInputs = {
        temperature: Float32Array.of(r.p.temperature),
        topK: Int32Array.of(r.p.topK),
        topP: Float32Array.of(r.p.topP),
        minP: Float32Array.of(r.p.minP),
        seed: Uint32Array.of(lo, hi),
        step: Int32Array.of(s.ids.length),
      };
      const id = sampleRow(row, 0, V, inputs, 0);
      const lp = tokenLogprobs(row, id, r.p.logprobs ?? 0);
      s.ids.push(id);
      s.logprobs.push(lp);
      s.cum += lp.logprob;
      s.text = tok.decode(s.ids);
      const d = s.checker.check(id, s.text, s.ids.length);
      if (d.stop) {
        if (d.truncateTextTo !== undefined) s.text = s.text.slice(0, d.truncateTextTo);
        s.done = { reason: d.reason, stopReason: d.stopReason };
      }
    });
  }
  return st.map((s) => ({
    ids: s.ids,
    text: s.text,
    logprobs: s.logprobs,
    cumulativeLogprob: s.cum,
    finishReason: s.done!.reason,
    stopReason: s.done!.stopReason,
  }));
}

const P = (x: SamplingParamsInput): SamplingParams => new SamplingParams(x);
const prompt = ref.prompt_ids;

test("the host loop at temperature 0 reproduces the greedy reference", () => {
  using runner = ModelRunner.fromEngine(engine());
  const [r] = hostGenerate(runner, [{ prompt, p: P({ temperature: 0, maxTokens: 24 }) }]);
  assert.deepEqual(r.ids, ref.greedy_new_ids.slice(0, 24));
  assert.equal(r.finishReason, "length");
});

test("seed: a request's samples depend only on its seed, not on its batch mates or their order", () => {
  using runner = ModelRunner.fromEngine(engine());
  const a: Req = { prompt, p: P({ temperature: 1, topP: 0.95, seed: 42, repetitionPenalty: 1.2, maxTokens: 20 }) };
  const mateB: Req = { prompt: [1, 403], p: P({ temperature: 0.8, seed: 7, maxTokens: 12 }) };
  const mateC: Req = { prompt, p: P({ temperature: 1.2, topK: 20, seed: 42 + 1, presencePenalty: 1, maxTokens: 25 }) };
  const alone = hostGenerate(runner, [a])[0];
  const batched = hostGenerate(runner, [mateB, a, mateC]);
  const reordered = hostGenerate(runner, [mateC, mateB, a]);
  assert.deepEqual(batched[1].ids, alone.ids);
  assert.deepEqual(reordered[2].ids, alone.ids);
  const otherSeed = hostGenerate(runner, [{ ...a, p: P({ temperature: 1, topP: 0.95, seed: 43, repetitionPenalty: 1.2, maxTokens: 20 }) }])[0];
  assert.notDeepEqual(otherSeed.ids, alone.ids);
  assert.notDeepEqual(alone.ids, ref.greedy_new_ids.slice(0, 20), "sampled, not greedy");
});

test("n = 3: the three sequences of one request are distinct, reproducible, and sequence 0 equals n = 1", () => {
  using runner = ModelRunner.fromEngine(engine());
  const p = P({ n: 3, temperature: 1, seed: 5, maxTokens: 16 });
  const seqs = [0, 1, 2].map((seqIndex) => ({ prompt, p, seqIndex }));
  const r = hostGenerate(runner, seqs);
  assert.equal(new Set(r.map((x) => x.ids.join(","))).size, 3, "distinct samples");
  assert.deepEqual(hostGenerate(runner, seqs).map((x) => x.ids), r.map((x) => x.ids), "reproducible");
  assert.deepEqual(hostGenerate(runner, [{ prompt, p: P({ temperature: 1, seed: 5, maxTokens: 16 }) }])[0].ids, r[0].ids);
});

test("logprobs: per-token logprobs sum to the cumulative logprob and match a from-scratch recomputation", () => {
  using runner = ModelRunner.fromEngine(engine());
  const p = P({ temperature: 0.9, seed: 3, logprobs: 4, repetitionPenalty: 1.3, maxTokens: 12 });
  const [r] = hostGenerate(runner, [{ prompt, p }]);
  const sum = r.logprobs.reduce((a, x) => a + x.logprob, 0);
  assert.ok(Math.abs(sum - r.cumulativeLogprob) < 1e-9);
  // Recompute: the processed distribution at each position, from a fresh forward of the prefix.
  let expected = 0;
  r.ids.forEach((id, t) => {
    const out = runner.generate([[...prompt, ...r.ids.slice(0, t)]], { maxNewTokens: 1, endId: -1, outputGenerationLogits: true });
    const row = out.generationLogits![0][0];
    processLogits(row, p, { promptIds: prompt, outputIds: r.ids.slice(0, t), requestId: 0, seqIndex: 0 }, EOS);
    let max = -Infinity, z = 0;
    for (const x of row) max = Math.max(max, x);
    for (const x of row) z += Math.exp(x - max);
    expected += row[id] - max - Math.log(z);
  });
  assert.ok(Math.abs(expected - r.cumulativeLogprob) < 1e-4, `${expected} vs ${r.cumulativeLogprob}`);
  for (const lp of r.logprobs) {
    assert.equal(lp.top.length, 4);
    for (let k = 1; k < 4; k++) assert.ok(lp.top[k - 1].logprob >= lp.top[k].logprob);
    assert.ok(lp.logprob <= 0 && lp.logprob >= lp.top[3].logprob - 50);
  }
});

test("logprobs: at temperature 0 the chosen token is the top-1 alternative; a row's probabilities sum to 1", () => {
  using runner = ModelRunner.fromEngine(engine());
  const [r] = hostGenerate(runner, [{ prompt, p: P({ temperature: 0, logprobs: 2, maxTokens: 6 }) }]);
  r.logprobs.forEach((lp, t) => {
    assert.equal(lp.top[0].id, r.ids[t]);
    assert.equal(lp.top[0].logprob, lp.logprob);
  });
  const row = runner.generate([prompt], { maxNewTokens: 1, endId: -1, outputGenerationLogits: true }).generationLogits![0][0];
  const total = logSoftmax(row).reduce((a, x) => a + Math.exp(x), 0);
  assert.ok(Math.abs(total - 1) < 1e-9);
  assert.equal(tokenLogprobs(row, 0, 3).top[0].id, argmax(row, 0, row.length));
  assert.deepEqual(tokenLogprobs(row, 0, 0).top, []);
});

test("a stop string spanning two tokens (' lo' + 'ved') ends the request and is cut from the text", () => {
  using runner = ModelRunner.fromEngine(engine());
  const [r] = hostGenerate(runner, [{ prompt, p: P({ temperature: 0, stop: ["loved", "dragon"], maxTokens: 40 }) }]);
  assert.equal(r.ids.length, 14);
  assert.equal(r.text, ", there was a little girl named Lily. She ");
  assert.equal(r.finishReason, "stop");
  assert.equal(r.stopReason, "loved");
  const [inc] = hostGenerate(runner, [{ prompt, p: P({ temperature: 0, stop: "loved", includeStopStrInOutput: true, maxTokens: 40 }) }]);
  assert.equal(inc.text, ", there was a little girl named Lily. She loved");
});

test("minTokens suppresses the end id until that many tokens exist", () => {
  using runner = ModelRunner.fromEngine(engine());
  // Treat "," (the greedy first token) as the end id: without minTokens the request ends at once.
  const comma = ref.greedy_new_ids[0];
  const [plain] = hostGenerate(runner, [{ prompt, p: P({ temperature: 0, maxTokens: 30 }), eosIds: [comma] }]);
  assert.deepEqual(plain.ids, [comma]);
  assert.equal(plain.finishReason, "stop");
  const [min] = hostGenerate(runner, [{ prompt, p: P({ temperature: 0, minTokens: 4, maxTokens: 30 }), eosIds: [comma] }]);
  assert.ok(min.ids.length > 4, `got ${min.ids.length} tokens`);
  assert.ok(!min.ids.slice(0, 4).includes(comma));
  assert.equal(min.ids.at(-1), comma);
  assert.equal(min.finishReason, "stop");
  // Stop token ids are held back the same way.
  const [stopId] = hostGenerate(runner, [{ prompt, p: P({ temperature: 0, minTokens: 2, stopTokenIds: [comma], maxTokens: 30 }) }]);
  assert.ok(stopId.ids.length > 2 && !stopId.ids.slice(0, 2).includes(comma));
  assert.equal(stopId.stopReason, comma);
});

test("noRepeatNgramSize 2 leaves no repeated bigram in prompt + output (the greedy output has many)", () => {
  using runner = ModelRunner.fromEngine(engine());
  const bigrams = (ids: number[]): string[] => ids.slice(1).map((t, i) => `${ids[i]},${t}`);
  const greedy = [...prompt, ...ref.greedy_new_ids.slice(0, 60)];
  assert.ok(new Set(bigrams(greedy)).size < bigrams(greedy).length, "precondition: greedy repeats bigrams");
  const [r] = hostGenerate(runner, [{ prompt, p: P({ temperature: 0, noRepeatNgramSize: 2, maxTokens: 60 }) }]);
  const all = [...prompt, ...r.ids];
  assert.equal(new Set(bigrams(all)).size, bigrams(all).length);
});

test("penalties and biases steer the real model: repetition/presence change greedy; logitBias/badWords/allowedTokenIds obey", () => {
  using runner = ModelRunner.fromEngine(engine());
  const greedy = ref.greedy_new_ids.slice(0, 30);
  const gen = (x: SamplingParamsInput, eosIds?: number[]): Result =>
    hostGenerate(runner, [{ prompt, p: P({ temperature: 0, maxTokens: 30, ...x }), eosIds }])[0];
  assert.notDeepEqual(gen({ repetitionPenalty: 1.5 }).ids, greedy);
  assert.notDeepEqual(gen({ presencePenalty: 1.5 }).ids, greedy);
  assert.notDeepEqual(gen({ frequencyPenalty: 1 }).ids, greedy);
  const lily = greedy[9];
  assert.ok(!gen({ badTokenIds: [lily] }).ids.includes(lily));
  assert.ok(!gen({ logitBias: { [lily]: -100 } }).ids.includes(lily));
  assert.ok(gen({ logitBias: { "300": 100 } }).ids.every((t) => t === 300));
  assert.ok(gen({ allowedTokenIds: [261, 267, 300] }).ids.every((t) => [261, 267, 300].includes(t)));
  assert.ok(gen({ embeddingBias: Array.from({ length: runner.vocabSize }, (_, i) => (i === 301 ? 100 : 0)) }).ids.every((t) => t === 301));
  const cb = gen({ logitsProcessor: (ids, logits) => void (logits[ids.length % 2 === 0 ? 310 : 311] += 1000) });
  assert.deepEqual(cb.ids.slice(0, 4), [310, 311, 310, 311]);
});

test("badWords: a word spanning three tokens (' g' 'ir' 'l') never appears in the text", () => {
  using runner = ModelRunner.fromEngine(engine());
  const p = P({ temperature: 0, badWords: ["girl"], maxTokens: 40 });
  const badWordIds = resolveBadWords(p.badWords, (s) => tok.encode(s, { addSpecialTokens: false }));
  assert.ok(badWordIds.some((w) => w.length === 3), `encodings ${JSON.stringify(badWordIds)}`);
  assert.ok(tok.decode(ref.greedy_new_ids.slice(0, 40)).includes("girl"), "precondition: greedy says girl");
  const [r] = hostGenerate(runner, [{ prompt, p, badWordIds }]);
  assert.ok(!r.text.includes("girl"), r.text);
  assert.deepEqual(r.ids.slice(0, 6), ref.greedy_new_ids.slice(0, 6), "identical up to the banned word's last token");
});
