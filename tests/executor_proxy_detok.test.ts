// GenerationExecutorProxy packs each step's streamed deltas into typed arrays (lib/executor/wire.ts) and detokenizes on the caller's thread the requests whose text the worker's
// loop never reads (lib/executor/caller_detok.ts): every output must equal the in-process executor's.
import * as fs from "node:fs";
import { buildSync } from "../lib/builder/builder.ts";
import { callerMayDetokenize } from "../lib/executor/caller_detok.ts";
import type { GenerationRequest } from "../lib/executor/config.ts";
import { createExecutor } from "../lib/executor/create.ts";
import type { GenerationExecutor } from "../lib/executor/executor.ts";
import type { RequestOutput } from "../lib/executor/outputs.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { packStepOutputs, unpackStepOutputs, type WireDelta } from "../lib/executor/wire.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { assert, sharedDir, test } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { prompt_ids: number[] };
const tokenizer = LlmTokenizer.fromDir(dir);
const model = AutoModelForCausalLM.fromHuggingFace(dir);
const engine = buildSync(model, { maxBatchSize: 16, maxNumTokens: 128, tokensPerBlock: 8, maxInputLen: 64 });
model.close();
const sp = (p: SamplingParamsInput): SamplingParams => new SamplingParams(p);

/** Every output of a request, the streamed ones included, with its id left out (ids differ per executor). */
async function run(ex: GenerationExecutor, req: GenerationRequest): Promise<Omit<RequestOutput, "requestId">[]> {
  const seen: Omit<RequestOutput, "requestId">[] = [];
  const r = ex.submit(req);
  if (req.streaming) {
    for await (const o of r) seen.push({ ...o, requestId: undefined } as Omit<RequestOutput, "requestId">);
  } else seen.push({ ...(await r.result()), requestId: undefined } as Omit<RequestOutput, "requestId">);
  return seen;
}

/** Per completion and token count: the text (and finish state) that output carried, and the final output whole. */
function byLength(outs: Omit<RequestOutput, "requestId">[]): { steps: Map<string, string>; final: unknown } {
  const steps = new Map<string, string>();
  for (const o of outs) {
    for (const c of o.outputs) steps.set(`${c.index}:${c.tokenIds.length}:${c.finishReason}`, c.text);
  }
  const last = outs.at(-1)!;
  return { steps, final: { ...last, outputs: last.outputs.map((c) => ({ ...c, textDiff: undefined, tokenIdsDiff: undefined })) } };
}

test("proxy caller-side detokenization: streamed and final outputs equal the in-process executor's on many prompts and seeds", async () => {
  const proxy = await createExecutor({ engine, tokenizer, tokenizerDir: dir, mode: "proxy" });
  const local = await createExecutor({ engine, tokenizer, mode: "inprocess" });
  try {
    const prompts = [ref.prompt_ids, [1, 403], [1, 351, 269], [1, 70, 71, 72, 300], [1, 259, 31, 450, 260, 33], [1]];
    const params: SamplingParamsInput[] = [
      { temperature: 0, maxTokens: 24, ignoreEos: true },
      { temperature: 1, maxTokens: 40 }, // may end on the end id (its text never added)
      { temperature: 1.2, maxTokens: 30, n: 2, logprobs: 2 },
      { temperature: 1.5, maxTokens: 20, n: 3, bestOf: 3, minTokens: 10 },
      // Frequent stop ids (" the", "e", "he", "ha", "t"): the stop id's own text is left out unless includeStopStrInOutput.
      { temperature: 1, maxTokens: 30, stopTokenIds: [265, 261, 260, 300, 259] },
      { temperature: 1, maxTokens: 30, stopTokenIds: [265, 261, 260, 300, 259], includeStopStrInOutput: true },
      // Hot sampling: byte tokens (ids 3..258) often end a sequence inside a UTF-8 character, given up at the end.
      { temperature: 4, maxTokens: 9, ignoreEos: true, n: 2 },
      { temperature: 4, maxTokens: 7, ignoreEos: true, skipSpecialTokens: false },
      // Only UTF-8 lead and continuation bytes (0xE2, 0xF0, 0x80, 0x9C): characters split over tokens, some left incomplete.
      { temperature: 1, maxTokens: 5, ignoreEos: true, allowedTokenIds: [229, 243, 131, 159] },
      { temperature: 1, maxTokens: 6, ignoreEos: true, allowedTokenIds: [229, 243, 131, 159], n: 2 },
      { temperature: 1, maxTokens: 16, skipSpecialTokens: false, spacesBetweenSpecialTokens: false },
      { temperature: 1, maxTokens: 16, skipSpecialTokens: false },
      // Stop strings: matched on the caller's thread when streamed (n = 1), else in the worker.
      { temperature: 1, maxTokens: 30, stop: [".", "he "] },
      { temperature: 1, maxTokens: 30, stop: ["e"], includeStopStrInOutput: true },
      { temperature: 1, maxTokens: 40, stop: [" the", "and", "a"], logprobs: 1 },
      { temperature: 1, maxTokens: 30, stop: ["he "], minTokens: 8, stopTokenIds: [261] },
      { temperature: 1, maxTokens: 30, stop: ["o", "e "], includeStopStrInOutput: true, stopTokenIds: [265] },
      { temperature: 1.3, maxTokens: 30, stop: ["ed", "ing "], minTokens: 3, logprobs: 0 },
      { temperature: 1, maxTokens: 12, ignoreEos: true, allowedTokenIds: [229, 131, 159, 259], stop: ["\u201ct", "\u201c\u201c", "\uFFFD"] },
      // Detokenized in the worker (their text is read there): the same outputs either way.
      { temperature: 1, maxTokens: 12, excludeInputFromOutput: false },
      { temperature: 1, maxTokens: 12, n: 1, bestOf: 3 },
      { temperature: 0, maxTokens: 10, useBeamSearch: true, n: 2 },
    ];
    const reqs: GenerationRequest[] = [];
    for (const [pi, promptTokenIds] of prompts.entries()) {
      for (const [qi, p] of params.entries()) {
        const seed = 1000 * pi + qi;
        reqs.push({ promptTokenIds, samplingParams: sp({ ...p, seed }), streaming: (pi + qi) % 3 !== 0 });
      }
    }
    assert.ok(reqs.filter((r) => callerMayDetokenize(r.samplingParams, r.streaming ?? false)).length >= 40, "most requests take the caller-side path");
    const [remote, inproc] = await Promise.all([
      Promise.all(reqs.map((r) => run(proxy, r))),
      Promise.all(reqs.map((r) => run(local, r))),
    ]);
    let stepsCompared = 0, eosEnds = 0;
    for (let i = 0; i < reqs.length; i++) {
      const a = byLength(remote[i]), b = byLength(inproc[i]);
      assert.deepEqual(a.final, b.final, `request ${i} (${JSON.stringify(reqs[i].samplingParams)}): final output`);
      for (const [k, text] of a.steps) {
        if (!b.steps.has(k)) continue; // a step boundary the other run did not have (batching differs)
        assert.equal(text, b.steps.get(k), `request ${i}: streamed text at ${k}`);
        stepsCompared++;
      }
      // Streamed diffs concatenate to the text.
      if (reqs[i].streaming) {
        const acc = new Map<number, string>();
        for (const o of remote[i]) for (const c of o.outputs) acc.set(c.index, (acc.get(c.index) ?? "") + (c.textDiff ?? ""));
        for (const c of remote[i].at(-1)!.outputs) if (!(reqs[i].samplingParams.bestOf! > reqs[i].samplingParams.n)) assert.equal(acc.get(c.index), c.text);
      }
      eosEnds += remote[i].at(-1)!.outputs.filter((c) => c.finishReason === "stop").length;
    }
    assert.ok(stepsCompared > 500, `${stepsCompared} streamed outputs compared`);
    assert.ok(eosEnds > 5, `${eosEnds} completions ended on a stop id / stop string`);
    const strings = reqs.filter((r, i) =>
      r.streaming && r.samplingParams.stop.length > 0 && callerMayDetokenize(r.samplingParams, true) &&
      typeof remote[i].at(-1)!.outputs[0].stopReason === "string"
    ).length;
    assert.ok(strings > 10, `${strings} streams ended on a stop string found on the caller's thread`);
    // The worker aborted those requests (the abort messages precede this submit): every KV block is free again.
    await proxy.submit({ promptTokenIds: [1, 403], samplingParams: sp({ maxTokens: 2 }) }).result();
    assert.equal(proxy.getStats().at(-1)?.kvBlocksUsed, 0, "KV back to baseline");
    assert.equal(proxy.numInFlight, 0);
  } finally {
    await proxy.shutdown();
    await local.shutdown();
  }
});

test("proxy step messages: deltas pack into one Int32Array and one string and unpack to the same outputs, in order", () => {
  let seed = 7;
  const rnd = (k: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % k;
  };
  const words = ["", "a", " the", "é", "🤖", "\uFFFD", "x y"];
  const delta = (requestId: number): WireDelta => ({
    requestId,
    delta: true,
    outputs: Array.from({ length: 1 + rnd(3) }, (_, index) => ({
      index,
      textDiff: words[rnd(words.length)] + words[rnd(words.length)],
      tokenIdsDiff: Array.from({ length: rnd(4) }, () => rnd(200_000)),
      // Some not packable: a finish or stop reason or a cumulative logprob travels as an object.
      finishReason: rnd(6) === 0 ? "stop" as const : null,
      stopReason: rnd(8) === 0 ? (rnd(2) ? 13 : "\n") : null,
      cumulativeLogprob: rnd(8) === 0 ? -1.5 : null,
    })),
  });
  const full = (requestId: number): RequestOutput => ({
    requestId,
    prompt: null,
    promptTokenIds: [1, 2],
    outputs: [{ index: 0, text: "hi", tokenIds: [5], finishReason: null, textDiff: "hi", tokenIdsDiff: [5] }],
    finished: rnd(2) === 0,
  });
  for (let round = 0; round < 50; round++) {
    const outs = Array.from({ length: rnd(40) }, (_, i) => (rnd(4) === 0 ? full(i) : delta(i)));
    const wire = packStepOutputs(outs);
    assert.ok(wire.objects.length <= outs.length);
    assert.deepEqual(unpackStepOutputs(structuredClone(wire)), outs, `round ${round}`);
  }
  const all = Array.from(
    { length: 256 },
    (_, i) => ({ ...delta(i), outputs: [{ ...delta(i).outputs[0], finishReason: null, stopReason: null, cumulativeLogprob: null }] }),
  );
  assert.equal(packStepOutputs(all).objects.length, 0, "a step of running streams is one Int32Array and one string");
  const bad = packStepOutputs([delta(1), full(2)]);
  assert.throws(() => unpackStepOutputs({ ...bad, texts: bad.texts + "x" }), /does not add up/);
});
