// Scheduler: continuous batching under slot and token budgets, chunked prefill, priority, preemption.
import { KvCacheManager } from "../lib/executor/kv_cache_manager.ts";
import { Scheduler, type SchedulerOutput } from "../lib/executor/scheduler.ts";
import { SequenceGroup } from "../lib/executor/sequence.ts";
import { assert, test } from "./harness.ts";

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);
let arrival = 0;
function group(id: number, promptLen: number, opts: { fanout?: number; priority?: number; from?: number } = {}): SequenceGroup {
  return new SequenceGroup(id, range(promptLen, opts.from ?? id * 1000), { fanout: opts.fanout, priority: opts.priority, arrival: arrival++ });
}

/** Runs a planned step: computed counts advance; each sequence whose chunk completed gets a token. */
function run(s: Scheduler, step: SchedulerOutput): void {
  s.markComputed(step);
  for (const c of step.chunks) {
    if (c.numRows === 0) continue;
    const g = c.seq.group;
    const seqs = g.isForked ? [c.seq] : s.fork(g);
    for (const q of seqs) q.tokenIds.push(7);
  }
}
const plan = (step: SchedulerOutput): [number, number, number][] => step.chunks.map((c) => [c.seq.requestId, c.start, c.numTokens]);

test("a prompt longer than the token budget is prefilled in chunks, then decodes one token per step", () => {
  const s = new Scheduler(new KvCacheManager({ numBlocks: 64, tokensPerBlock: 4 }), { maxBatchSize: 4, maxNumTokens: 8 });
  s.add(group(0, 20));
  const steps: [number, number, number][][] = [];
  for (let i = 0; i < 4; i++) {
    const st = s.schedule();
    steps.push(plan(st));
    run(s, st);
  }
  assert.deepEqual(steps, [[[0, 0, 8]], [[0, 8, 8]], [[0, 16, 4]], [[0, 20, 1]]]);
  const st = s.schedule();
  assert.equal(st.numDecodeTokens, 1);
  assert.equal(st.numPrefillTokens, 0);
});

test("chunked prefill off: a prompt waits until it fits the budget whole", () => {
  const s = new Scheduler(new KvCacheManager({ numBlocks: 64, tokensPerBlock: 4 }), { maxBatchSize: 4, maxNumTokens: 8, enableChunkedPrefill: false });
  s.add(group(0, 6));
  s.add(group(1, 6));
  const st = s.schedule();
  assert.deepEqual(plan(st), [[0, 0, 6]], "request 1 (6 tokens) is not split over the 2 tokens left");
  run(s, st);
  assert.deepEqual(plan(s.schedule()), [[0, 6, 1], [1, 0, 6]]);
});

test("decodes run before prefill chunks; new requests join while others decode (in-flight batching)", () => {
  const s = new Scheduler(new KvCacheManager({ numBlocks: 64, tokensPerBlock: 4 }), { maxBatchSize: 4, maxNumTokens: 6 });
  s.add(group(0, 3));
  run(s, s.schedule());
  s.add(group(1, 10));
  const st = s.schedule();
  assert.deepEqual(plan(st), [[0, 3, 1], [1, 0, 5]]);
  assert.equal(st.numDecodeTokens, 1);
  assert.equal(st.numPrefillTokens, 5);
});

test("maxBatchSize counts sequence slots (fanout reserved before the fork)", () => {
  const s = new Scheduler(new KvCacheManager({ numBlocks: 64, tokensPerBlock: 4 }), { maxBatchSize: 4, maxNumTokens: 64 });
  s.add(group(0, 3, { fanout: 3 }));
  s.add(group(1, 3, { fanout: 2 }));
  s.add(group(2, 3));
  const st = s.schedule();
  assert.deepEqual(plan(st).map((c) => c[0]), [0], "group 1 (2 slots) does not fit beside 3 slots, and FCFS keeps group 2 behind it");
  run(s, st);
  assert.equal(s.groups[0].seqs.length, 3, "forked into 3 sequences sharing the prompt");
  assert.equal(s.kv.stats.usedBlocks, 1);
  const st2 = s.schedule();
  assert.deepEqual(plan(st2), [[0, 3, 1], [0, 3, 1], [0, 3, 1]]);
  assert.equal(st2.blockCopies.length, 2, "two children copy the shared partial block; the last writes in place");
});

test("higher priority is admitted first; equal priorities are first come, first served", () => {
  const s = new Scheduler(new KvCacheManager({ numBlocks: 64, tokensPerBlock: 4 }), { maxBatchSize: 1, maxNumTokens: 64 });
  s.add(group(0, 2));
  s.add(group(1, 2, { priority: 5 }));
  s.add(group(2, 2, { priority: 5 }));
  assert.deepEqual(plan(s.schedule()).map((c) => c[0]), [1]);
});

test("out of blocks: the latest running request is preempted, recomputed later, and its tokens kept", () => {
  const kv = new KvCacheManager({ numBlocks: 4, tokensPerBlock: 2 });
  const s = new Scheduler(kv, { maxBatchSize: 4, maxNumTokens: 64 });
  const a = group(0, 3), b = group(1, 3);
  s.add(a);
  s.add(b);
  run(s, s.schedule()); // a: 4 tokens in 2 blocks, b: the same
  assert.equal(kv.stats.freeBlocks, 0);
  run(s, s.schedule()); // position 3 still fits block 1 for both; now both have 5 tokens
  const st = s.schedule(); // position 4 needs a third block each: b (later) is preempted for a
  assert.deepEqual(st.preempted.map((g) => g.requestId), [1]);
  assert.deepEqual(plan(st), [[0, 4, 1]]);
  assert.equal(b.status, "waiting");
  assert.equal(b.seqs[0].numComputedTokens, 0);
  assert.equal(b.seqs[0].numTokens, 5, "generated tokens are kept for the recompute");
  run(s, st);
  a.seqs[0].finishReason = "length";
  s.reap();
  const again = s.schedule();
  assert.equal(again.chunks[0].seq.requestId, 1);
  assert.equal(again.chunks[0].numTokens + again.chunks[0].start, 5, "recompute covers prompt and output");
});

test("a group that cannot fit even alone fails with a clear reason instead of looping", () => {
  const kv = new KvCacheManager({ numBlocks: 2, tokensPerBlock: 2 });
  const s = new Scheduler(kv, { maxBatchSize: 4, maxNumTokens: 64 });
  s.add(group(0, 3, { fanout: 3 }));
  run(s, s.schedule());
  let failed: SchedulerOutput["failed"] = [];
  for (let i = 0; i < 5 && failed.length === 0; i++) {
    const st = s.schedule();
    failed = st.failed;
    run(s, st);
  }
  assert.equal(failed.length, 1);
  assert.match(failed[0].reason, /need more than the KV cache's 2 blocks/);
  assert.equal(kv.stats.usedBlocks, 0);
  assert.equal(s.hasWork, false);
});

test("remove frees a running group's blocks at once", () => {
  const kv = new KvCacheManager({ numBlocks: 8, tokensPerBlock: 2 });
  const s = new Scheduler(kv, { maxBatchSize: 4, maxNumTokens: 64 });
  s.add(group(0, 5));
  run(s, s.schedule());
  assert.equal(kv.stats.usedBlocks, 3);
  assert.equal(s.remove(0)?.status, "finished");
  assert.equal(kv.stats.usedBlocks, 0);
  assert.equal(s.remove(0), undefined);
});

test("prefix hits count as computed: only the new suffix is prefilled", () => {
  const kv = new KvCacheManager({ numBlocks: 32, tokensPerBlock: 4 });
  const s = new Scheduler(kv, { maxBatchSize: 4, maxNumTokens: 64 });
  s.add(group(0, 13, { from: 0 }));
  run(s, s.schedule());
  s.groups[0].seqs[0].finishReason = "stop";
  s.reap();
  s.add(group(1, 15, { from: 0 }));
  const st = s.schedule();
  assert.deepEqual(plan(st), [[1, 12, 3]]);
  assert.equal(st.numPrefillTokens, 3);
});

test("prompt logits: each prompt position costs a logits row (maxNumRows), and no cached prefix is taken for them", () => {
  const kv = new KvCacheManager({ numBlocks: 64, tokensPerBlock: 4 });
  const s = new Scheduler(kv, { maxBatchSize: 4, maxNumTokens: 16, maxNumRows: 8 });
  // A plain 10-token prompt publishes its first two blocks.
  s.add(new SequenceGroup(0, range(10), { arrival: arrival++ }));
  run(s, s.schedule());
  // The same prompt wanting prompt logits, n = 2: positions 0 … 8 get rows, position 9 two sampling rows.
  const g = new SequenceGroup(1, range(10), { fanout: 2, arrival: arrival++, wantsPromptLogits: true });
  s.add(g);
  const st = s.schedule();
  const c = st.chunks.find((x) => x.seq.requestId === 1)!;
  assert.deepEqual([c.start, c.numTokens, c.numRows, c.promptRows], [0, 7, 0, [0, 7]], "7 rows left after request 0's decode row; no cache hit");
  run(s, st);
  g.promptLogitsFrom = 7; // the executor advances it as the rows come back
  const st2 = s.schedule();
  const c2 = st2.chunks.find((x) => x.seq.requestId === 1)!;
  assert.deepEqual([c2.start, c2.numTokens, c2.numRows, c2.promptRows], [7, 3, 2, [7, 9]], "2 prompt rows + 2 sampling rows");
  run(s, st2);
  // Not wanted: the cached prefix is taken as before, and no prompt rows.
  s.add(new SequenceGroup(2, range(10), { arrival: arrival++ }));
  const c3 = s.schedule().chunks.find((x) => x.seq.requestId === 2)!;
  assert.deepEqual([c3.start, c3.numTokens, c3.numRows, c3.promptRows[1] - c3.promptRows[0]], [8, 2, 1, 0]);
});

test("admissionDelaySteps: new prompts wait up to N steps while others decode, then prefill together; at once when idle or when they fill the batch", () => {
  const mk = (delay: number): Scheduler =>
    new Scheduler(new KvCacheManager({ numBlocks: 256, tokensPerBlock: 4 }), { maxBatchSize: 4, maxNumTokens: 64, admissionDelaySteps: delay });
  const s = mk(2);
  s.add(group(100, 4)); // nothing runs: admitted at once
  let st = s.schedule();
  assert.deepEqual(plan(st), [[100, 0, 4]]);
  run(s, st);
  s.add(group(101, 4)); // held: 100 decodes alone
  st = s.schedule();
  assert.deepEqual(plan(st), [[100, 4, 1]]);
  run(s, st);
  s.add(group(102, 4)); // still held (1 of 2 steps)
  st = s.schedule();
  assert.deepEqual(plan(st), [[100, 5, 1]]);
  run(s, st);
  st = s.schedule(); // held 2 steps: both prefill in this one
  assert.deepEqual(plan(st), [[100, 6, 1], [101, 0, 4], [102, 0, 4]]);
  run(s, st);
  s.add(group(103, 4)); // would take the last free slot: no wait
  st = s.schedule();
  assert.deepEqual(plan(st).map((c) => c[0]), [100, 101, 102, 103]);
  assert.equal(st.numPrefillTokens, 4);

  // A group the step had no room for goes at the next step, not after another delay.
  const tight = new Scheduler(new KvCacheManager({ numBlocks: 256, tokensPerBlock: 4 }), {
    maxBatchSize: 4,
    maxNumTokens: 6,
    enableChunkedPrefill: false,
    admissionDelaySteps: 1,
  });
  tight.add(group(300, 4));
  run(tight, tight.schedule());
  tight.add(group(301, 4));
  tight.add(group(302, 4));
  run(tight, tight.schedule()); // held
  st = tight.schedule();
  assert.deepEqual(plan(st), [[300, 5, 1], [301, 0, 4]]); // 302 does not fit the 6-token step
  run(tight, st);
  assert.deepEqual(plan(tight.schedule()), [[300, 6, 1], [301, 4, 1], [302, 0, 4]]);

  const off = mk(0); // the default: admitted at the next step
  off.add(group(200, 4));
  run(off, off.schedule());
  off.add(group(201, 4));
  assert.deepEqual(plan(off.schedule()), [[200, 4, 1], [201, 0, 4]]);
});

test("decodeDeferSteps: a large batch of waiting prompts prefills alone (decodes sit out at most N steps in a row); small ones, no room or no blocks: decodes run", () => {
  const mk = (defer: number, numBlocks = 256, maxBatchSize = 8): Scheduler =>
    new Scheduler(new KvCacheManager({ numBlocks, tokensPerBlock: 4 }), { maxBatchSize, maxNumTokens: 16, decodeDeferSteps: defer });
  // Four 8-token prompts, two per 16-token step: without deferral the second step mixes 2 decodes with 14 prompt
  // tokens, and a third step takes the last prompt's 2 tokens beside 3 decodes.
  const off = mk(0);
  for (let i = 0; i < 4; i++) off.add(group(400 + i, 8));
  const offSteps: [number, number][] = [];
  for (let i = 0; i < 4; i++) {
    const st = off.schedule();
    offSteps.push([st.numPrefillTokens, st.numDecodeTokens]);
    run(off, st);
  }
  assert.deepEqual(offSteps, [[16, 0], [14, 2], [2, 3], [0, 4]]);

  const s = mk(1);
  for (let i = 0; i < 4; i++) s.add(group(500 + i, 8));
  let st = s.schedule();
  assert.deepEqual(plan(st), [[500, 0, 8], [501, 0, 8]]);
  run(s, st);
  st = s.schedule(); // 500 and 501 decode next, but the waiting prompts fill the step: they go alone
  assert.deepEqual(plan(st), [[502, 0, 8], [503, 0, 8]]);
  run(s, st);
  st = s.schedule();
  assert.deepEqual(plan(st), [[500, 8, 1], [501, 8, 1], [502, 8, 1], [503, 8, 1]]);
  run(s, st);

  // At most N steps in a row: with 6 prompts and N = 1 the third prompt step carries the decodes.
  const one = mk(1);
  for (let i = 0; i < 6; i++) one.add(group(600 + i, 8));
  const shape: [number, number][] = [];
  for (let i = 0; i < 4; i++) {
    const x = one.schedule();
    shape.push([x.numPrefillTokens, x.numDecodeTokens]);
    run(one, x);
  }
  assert.deepEqual(shape, [[16, 0], [16, 0], [12, 4], [4, 5]]);

  // A prompt still prefilling (chunked) continues in the deferred step, before the waiting prompts.
  const chunked = mk(1);
  for (let i = 0; i < 4; i++) chunked.add(group(650 + i, 10));
  st = chunked.schedule();
  assert.deepEqual(plan(st), [[650, 0, 10], [651, 0, 6]]);
  run(chunked, st);
  st = chunked.schedule();
  assert.deepEqual(plan(st), [[651, 6, 4], [652, 0, 10], [653, 0, 2]]);
  run(chunked, st);
  assert.deepEqual(plan(chunked.schedule()), [[650, 10, 1], [651, 10, 1], [652, 10, 1], [653, 2, 8]]); // at most 1 step in a row

  // A prompt bringing less than half the budget does not hold the decodes back.
  const small = mk(1);
  small.add(group(700, 8));
  run(small, small.schedule());
  small.add(group(701, 4));
  assert.deepEqual(plan(small.schedule()), [[700, 8, 1], [701, 0, 4]]);

  // No free slot for the waiting prompt: decodes run.
  const full = mk(1, 256, 2);
  full.add(group(800, 8));
  full.add(group(801, 8));
  run(full, full.schedule());
  full.add(group(802, 8));
  assert.deepEqual(plan(full.schedule()), [[800, 8, 1], [801, 8, 1]]);

  // Too few KV blocks to keep one spare per decoding sequence: decodes run (the prompt waits for room).
  const tight = mk(1, 6);
  tight.add(group(900, 8)); // 2 blocks, then a third for its first decode token
  run(tight, tight.schedule());
  tight.add(group(901, 16)); // 4 blocks + 1 spare for 900 > the 4 free
  assert.deepEqual(plan(tight.schedule()).map((c) => c[0]), [900]);
});
