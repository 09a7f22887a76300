// Deferred grammar acceptance (guided decoding on the sampler path): a sequence's matcher accepts
// step k's token inside step k+1's mask callback, so on CUDA that work overlaps the forward pass. On
// the CPU backend, the same requests under "deferred" and "immediate" acceptance must give the same
// outputs token for token (finish and stop reasons, text, parsed objects) — many prompts and seeds,
// requests that end mid-batch by end id, by the grammar completing itself (ignoreEos: the end is seen
// one step late and the in-flight token dropped), by maxTokens mid-object, n = 2, regex and choice,
// unguided batch mates — with every request ending exactly once and every KV block released.
import { z } from "zod";
import { buildSync } from "../lib/builder/builder.ts";
import { type ExecutorConfig, ExecutorConfigSchema, type GenerationRequest, type IterationStats } from "../lib/executor/config.ts";
import { ExecutorLoop } from "../lib/executor/executor_loop.ts";
import { loadXGrammar } from "../lib/executor/guided/xgrammar.ts";
import type { RequestOutput } from "../lib/executor/outputs.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { Session } from "../lib/runtime/session.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { parseWith } from "../lib/util/validate.ts";
import { assert, test, testBackend, testBuild } from "./harness.ts";

const kjvDir = new URL("../models/kjv-llama", import.meta.url).pathname;
const tokenizer = LlmTokenizer.fromDir(kjvDir);
const model = AutoModelForCausalLM.fromHuggingFace(kjvDir);
const engine = buildSync(model, { maxBatchSize: 32, maxNumTokens: 512, maxInputLen: 64, maxSeqLen: 128, ...testBuild });
model.close();
await loadXGrammar();

/** kjv-llama never writes a double quote by itself: the name is bounded so objects close. */
const PersonKjv = z.object({ name: z.string().max(12), age: z.number().int() });
const PROMPTS = ["And the LORD said", "In the beginning", "Blessed are the", "And it came to pass", "Thou shalt not", "The son of David", "Behold"];

/** One run of `requests` through a fresh loop: every output and failure the sink saw, and the step stats. */
async function runAll(
  requests: readonly GenerationRequest[],
  guidedAccept: "deferred" | "immediate",
  abortAt?: { id: number; iter: number },
  kvTokens?: number,
) {
  const session = Session.fromSerializedEngine(engine, { backend: testBackend });
  const finals = new Map<number, RequestOutput[]>();
  const failures = new Map<number, Error[]>();
  let done!: () => void;
  const allDone = new Promise<void>((r) => (done = r));
  const ended = () => [...finals.keys(), ...failures.keys()].length;
  const config: ExecutorConfig = parseWith(ExecutorConfigSchema, { guidedAccept, ...(kvTokens ? { kvCacheConfig: { maxTokens: kvTokens } } : {}) }, "config");
  const loop: ExecutorLoop = new ExecutorLoop(session, tokenizer, config, {
    emit(outputs, failed, stats: IterationStats | null) {
      for (const o of outputs) if (o.finished) finals.set(o.requestId, [...(finals.get(o.requestId) ?? []), o]);
      for (const f of failed) failures.set(f.requestId, [...(failures.get(f.requestId) ?? []), f.error]);
      if (abortAt && stats?.iter === abortAt.iter) queueMicrotask(() => loop.abort(abortAt.id));
      if (ended() >= requests.length) queueMicrotask(done);
    },
  });
  try {
    requests.forEach((r, id) => loop.submit(id, r));
    await allDone;
    await new Promise((r) => setTimeout(r, 20)); // a late second final would land here
    return { finals, failures, stats: loop.getStats(), usedBlocks: loop.kv.stats.usedBlocks, inFlight: loop.numInFlight };
  } finally {
    loop.shutdown();
    session.dispose();
  }
}

const req = (prompt: string, p: SamplingParamsInput, streaming = false): GenerationRequest => ({
  prompt,
  promptTokenIds: tokenizer.encode(prompt),
  samplingParams: new SamplingParams(p),
  streaming,
});

/** The requests: guided JSON greedy and sampled, ignoreEos (the grammar ends them), short maxTokens, n = 2, regex, choice, plain. */
function requests(seedBase: number): GenerationRequest[] {
  const out: GenerationRequest[] = [];
  PROMPTS.forEach((p, i) => {
    const seed = seedBase + i;
    out.push(req(p, { temperature: 0, maxTokens: 48, guidedDecoding: { json: PersonKjv } }));
    out.push(req(p, { temperature: 0.9, seed, maxTokens: 48, ignoreEos: true, guidedDecoding: { json: PersonKjv } }, i % 2 === 0));
    out.push(req(p, { temperature: 0.8, seed: seed + 50, maxTokens: 4 + (i % 5) * 3, guidedDecoding: { json: PersonKjv } }));
  });
  out.push(req("Behold", { temperature: 0.7, seed: seedBase, n: 2, maxTokens: 40, ignoreEos: true, guidedDecoding: { json: PersonKjv } }, true));
  out.push(
    req("In the beginning", { temperature: 1, seed: seedBase + 1, maxTokens: 20, ignoreEos: true, guidedDecoding: { regex: "(cat|dog)s? [0-9]{2,3}" } }),
  );
  out.push(req("Thou shalt", { temperature: 1, seed: seedBase + 2, maxTokens: 20, ignoreEos: true, guidedDecoding: { choice: ["yes", "no", "maybe"] } }));
  out.push(req("And the LORD said", { temperature: 0.8, seed: seedBase + 3, maxTokens: 24 }));
  return out;
}

/** What must not change between the two modes. */
const summary = (o: RequestOutput) =>
  o.outputs.map((c) => ({ index: c.index, tokenIds: c.tokenIds, text: c.text, finishReason: c.finishReason, stopReason: c.stopReason, parsed: c.parsed }));

for (const seedBase of [1, 1000]) {
  test(`seeds ${seedBase}+: deferred acceptance gives the immediate path's outputs token for token; each request ends exactly once; KV released`, async () => {
    const reqs = requests(seedBase);
    const deferred = await runAll(reqs, "deferred");
    const immediate = await runAll(reqs, "immediate");
    let byGrammar = 0, byLength = 0, parsed = 0;
    for (const run of [deferred, immediate]) {
      assert.equal(run.failures.size, 0, [...run.failures.values()].flat().map((e) => e.message).join("; "));
      assert.equal(run.usedBlocks, 0, "every KV block released");
      assert.equal(run.inFlight, 0);
    }
    reqs.forEach((r, id) => {
      const d = deferred.finals.get(id) ?? [], im = immediate.finals.get(id) ?? [];
      assert.equal(d.length, 1, `request ${id}: ${d.length} final outputs (deferred)`);
      assert.equal(im.length, 1, `request ${id}: ${im.length} final outputs (immediate)`);
      assert.deepEqual(summary(d[0]), summary(im[0]), `request ${id} (${r.prompt})`);
      for (const c of d[0].outputs) {
        if (r.samplingParams.guidedDecoding && r.samplingParams.ignoreEos && c.finishReason === "stop") {
          assert.equal(c.stopReason, null);
          byGrammar++;
        }
        if (c.finishReason === "length") byLength++;
        if (c.parsed !== undefined) {
          assert.deepEqual(c.parsed, PersonKjv.parse(JSON.parse(c.text)));
          parsed++;
        }
      }
    });
    assert.ok(byGrammar >= 3, `only ${byGrammar} outputs ended by the grammar completing itself (the deferred end)`);
    assert.ok(byLength >= 3, `only ${byLength} outputs ended by maxTokens`);
    assert.ok(parsed >= 6, `only ${parsed} parsed objects`);
    // The deferred run moved its accepts into the mask callback: some mask time, and the host-side grammar time is only the final settles.
    assert.ok(deferred.stats.some((s) => (s.guidedMaskMs ?? 0) > 0));
    assert.ok(deferred.stats.every((s) => s.guidedHostMs !== undefined));
  });
}

test("a guided request aborted while its token is pending ends once with abort; the others finish as without it", async () => {
  const reqs = requests(7).slice(0, 9);
  const aborted = await runAll(reqs, "deferred", { id: 1, iter: 4 });
  const whole = await runAll(reqs, "deferred");
  assert.equal(aborted.failures.size, 0);
  assert.equal(aborted.usedBlocks, 0);
  reqs.forEach((_, id) => {
    const a = aborted.finals.get(id) ?? [];
    assert.equal(a.length, 1, `request ${id}: ${a.length} final outputs`);
    if (id === 1) {
      assert.equal(a[0].outputs[0].finishReason, "abort");
      assert.equal(a[0].outputs[0].parsed, undefined);
    } else assert.deepEqual(summary(a[0]), summary(whole.finals.get(id)![0]), `request ${id}`);
  });
});

test("a KV cache too small for the batch: preempted guided requests (recomputed with a token pending) give the same outputs in both modes", async () => {
  const reqs = requests(21);
  const deferred = await runAll(reqs, "deferred", undefined, 384);
  const immediate = await runAll(reqs, "immediate", undefined, 384);
  for (const run of [deferred, immediate]) {
    assert.equal(run.failures.size, 0, [...run.failures.values()].flat().map((e) => e.message).join("; "));
    assert.equal(run.usedBlocks, 0);
    assert.ok(run.stats.some((s) => s.numPreempted > 0), "no request was preempted");
  }
  reqs.forEach((_, id) => {
    assert.equal(deferred.finals.get(id)?.length, 1, `request ${id}`);
    assert.deepEqual(summary(deferred.finals.get(id)![0]), summary(immediate.finals.get(id)![0]), `request ${id}`);
  });
});
