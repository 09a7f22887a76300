// Overlapped decode steps (ExecutorConfig.overlapSteps, lib/executor/overlap.ts) on stories260k: the same
// tokens, texts and finish reasons as the executor without them — greedy and seeded sampling, stop ids and
// stop strings that end sequences one step after the next step was enqueued, maxTokens, n = 2, streaming,
// abort, prefix reuse — and decode steps really enqueued ahead (Session.launch with forwarded tokens).
// LLMRT_TEST_BACKEND=cuda runs it on the GPU (device-side token forwarding).
import * as fs from "node:fs";
import { buildSync } from "../lib/builder/builder.ts";
import type { ExecutorConfigInput } from "../lib/executor/config.ts";
import { GenerationExecutorWorker } from "../lib/executor/worker.ts";
import type { RequestOutput } from "../lib/executor/outputs.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { Session } from "../lib/runtime/session.ts";
import { assert, sharedDir, test, testBackend, testBuild } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { prompt_ids: number[]; greedy_new_ids: number[] };
const tokenizer = LlmTokenizer.fromDir(dir);
const model = AutoModelForCausalLM.fromHuggingFace(dir);
const engine = buildSync(model, { maxBatchSize: 16, maxNumTokens: 256, tokensPerBlock: 8, maxInputLen: 64, maxSeqLen: 160, ...testBuild });
model.close();
const executor = (config: ExecutorConfigInput): GenerationExecutorWorker =>
  GenerationExecutorWorker.create({ engine, tokenizer, backend: testBackend, config });

/** Counts Session.launch calls and those with forwarded tokens while `body` runs. */
async function countingLaunches<T>(body: () => Promise<T>): Promise<{ value: T; launches: number; forwarded: number }> {
  const real = Session.prototype.launch;
  let launches = 0, forwarded = 0;
  Session.prototype.launch = function (this: Session, ...a: Parameters<Session["launch"]>) {
    launches++;
    if (a[0].forwardedTokens && a[0].forwardedTokens.rows.some((r) => r >= 0)) forwarded++;
    return real.apply(this, a);
  };
  try {
    return { value: await body(), launches, forwarded };
  } finally {
    Session.prototype.launch = real;
  }
}

type Req = { prompt: number[]; p: SamplingParamsInput; streaming?: boolean };
const shape = (o: RequestOutput) => o.outputs.map((c) => ({ index: c.index, ids: c.tokenIds, text: c.text, finish: c.finishReason, stop: c.stopReason }));

async function runAll(reqs: readonly Req[], overlapSteps: boolean): Promise<ReturnType<typeof shape>[]> {
  await using ex = executor({ overlapSteps });
  const handles = reqs.map((r) => ex.submit({ promptTokenIds: r.prompt, samplingParams: new SamplingParams(r.p), streaming: r.streaming ?? false }));
  const outs: RequestOutput[] = [];
  for (const h of handles) outs.push(await h.result());
  return outs.map(shape);
}

const prompt = (i: number): number[] => [1, ...ref.greedy_new_ids.slice(i, i + 3 + (i % 7))];

test("overlapped decode steps give the same outputs as plain steps (greedy, seeded sampling, stop ids and strings, maxTokens, n = 2, streaming)", async () => {
  // A plain greedy run first, to pick stop ids and a stop string that occur mid-way through some outputs.
  const base: Req[] = Array.from({ length: 12 }, (_, i) => ({ prompt: prompt(i), p: { temperature: 0, maxTokens: 40 + 7 * i, ignoreEos: true } }));
  const plain = await runAll(base, false);
  const stopId = plain[0][0].ids[12], stopText = plain[3][0].text.slice(30, 36);
  assert.ok(stopText.length === 6, "a stop string from the text");
  const reqs: Req[] = [
    ...base,
    ...Array.from({ length: 4 }, (_, i) => ({ prompt: prompt(20 + i), p: { temperature: 0, maxTokens: 64, stopTokenIds: [stopId] } })),
    { prompt: prompt(3), p: { temperature: 0, maxTokens: 80, stop: [stopText] }, streaming: true },
    { prompt: prompt(5), p: { temperature: 0.9, topP: 0.9, seed: 11, maxTokens: 50, n: 2 } },
    { prompt: prompt(6), p: { temperature: 0.7, seed: 3, maxTokens: 33 }, streaming: true },
    { prompt: prompt(7), p: { temperature: 0, maxTokens: 1 } },
  ];
  const a = await runAll(reqs, false);
  const b = await countingLaunches(() => runAll(reqs, true));
  assert.deepEqual(b.value, a);
  assert.ok(a.some((o) => o[0].finish === "stop" && o[0].stop === stopId), "a stop id ended a sequence");
  assert.ok(a.some((o) => o[0].finish === "stop" && o[0].stop === stopText), "the stop string ended a sequence");
  assert.ok(b.launches > 20 && b.forwarded > 20, `decode steps enqueued ahead: ${b.launches} launches, ${b.forwarded} with forwarded tokens`);
});

test("overlapped decode steps: abort mid-stream and prefix reuse keep the plain outputs", async () => {
  const reqs: Req[] = Array.from(
    { length: 6 },
    (_, i) => ({ prompt: [1, ...ref.prompt_ids.slice(1, 20), ...prompt(i)], p: { temperature: 0, maxTokens: 60, ignoreEos: true } }),
  );
  const plain = await runAll(reqs, false);
  await using ex = executor({ overlapSteps: true });
  // Abort request 0 after a few streamed outputs: its final output is a prefix of the plain run's.
  const h = ex.submit({ promptTokenIds: reqs[0].prompt, samplingParams: new SamplingParams(reqs[0].p), streaming: true });
  const others = reqs.slice(1).map((r) => ex.submit({ promptTokenIds: r.prompt, samplingParams: new SamplingParams(r.p) }));
  let seen = 0, last: RequestOutput | null = null;
  for await (const o of h) {
    last = o;
    if (++seen === 6) h.abort();
  }
  const got = last!.outputs[0].tokenIds;
  assert.equal(last!.outputs[0].finishReason, "abort");
  assert.deepEqual(got, plain[0][0].ids.slice(0, got.length), "aborted output: a prefix of the plain run's ids (no placeholder)");
  for (const [i, o] of others.entries()) assert.deepEqual(shape(await o.result()), plain[i + 1]);
  // The same prompts again: blocks published while steps ran ahead are reused and give the same ids.
  const again = await Promise.all(reqs.map((r) => ex.submit({ promptTokenIds: r.prompt, samplingParams: new SamplingParams(r.p) }).result()));
  assert.deepEqual(again.map(shape), plain);
  assert.ok(ex.getStats().some((s) => s.kvBlocksReused > 0), "prefix blocks reused");
});
