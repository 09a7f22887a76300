// prefillPlanCache (lib/backends/cuda/launch_cache.ts): a step shape seen before on the same KV cache reuses its launch
// list; any other shape field, another KV cache or a list pushed out (least recently used) is planned again. Pure: no GPU.
import { LaunchCache, shapeKey } from "../lib/backends/cuda/launch_cache.ts";
import type { Launch, StepShape } from "../lib/backends/cuda/launch_types.ts";
import { assert, test } from "./harness.ts";

const PREFILL: StepShape = {
  numTokens: 2048,
  numSeqs: 1,
  numRows: 1,
  attention: { kind: "prefill" },
  sample: true,
  writeKvFirst: false,
  pruneRows: true,
  freshPrompts: true,
  maxSeqTokens: 2048,
};
const launches = (n: number): Launch[] => [{ kind: "kernel", op: n, kernel: "embedding_bf16", grid: [n, 1, 1], block: 256, args: [] }];

test("LaunchCache: the same shape on the same KV cache reuses the list; another field, KV cache or an evicted list is planned", () => {
  const c = new LaunchCache(2);
  const kv = {}, kv2 = {};
  let planned = 0;
  const make = (): Launch[] => launches(++planned);
  const first = c.get(kv, PREFILL, make);
  assert.equal(c.get(kv, { ...PREFILL }, make), first, "an equal shape (another object) hits");
  assert.equal(planned, 1);
  for (const other of [{ numTokens: 2047, maxSeqTokens: 2047 }, { numRows: 2 }, { pruneRows: false }, { sample: false }, { freshPrompts: false }]) {
    assert.notEqual(c.get(kv, { ...PREFILL, ...other }, make), first, JSON.stringify(other));
  }
  assert.equal(planned, 6);
  assert.notEqual(c.get(kv2, PREFILL, make), first, "another KV cache is planned");
  assert.equal(planned, 7);
  // Capacity 2: the PREFILL list of kv went out long ago.
  assert.notEqual(c.get(kv, PREFILL, make), first);
  assert.equal(planned, 8);
  assert.equal(c.hits, 1);
  assert.equal(c.misses, 8);
});

test("LaunchCache: the least recently used list goes first", () => {
  const c = new LaunchCache(2);
  const kv = {};
  const a = c.get(kv, PREFILL, () => launches(1));
  c.get(kv, { ...PREFILL, numRows: 2 }, () => launches(2));
  assert.equal(c.get(kv, PREFILL, () => launches(3)), a, "a hit makes it the most recent");
  c.get(kv, { ...PREFILL, numRows: 3 }, () => launches(4)); // evicts numRows 2, not PREFILL
  assert.equal(c.get(kv, PREFILL, () => launches(5)), a);
  assert.equal(c.get(kv, { ...PREFILL, numRows: 2 }, () => launches(6))[0].op, 6);
});

test("LaunchCache.clear: every list is planned again", () => {
  const c = new LaunchCache(4);
  const kv = {};
  const a = c.get(kv, PREFILL, () => launches(1));
  c.clear();
  assert.notEqual(c.get(kv, PREFILL, () => launches(2)), a);
});

test("shapeKey: every field counts, nested ones too, whatever the key order; undefined fields are left out", () => {
  const decode = (sk?: { numSplits: number; target: number }): StepShape => ({
    numTokens: 1,
    numSeqs: 1,
    numRows: 1,
    attention: { kind: "decode", numSplits: 2, splitSize: 256, ...(sk ? { sk } : {}) },
    sample: true,
  });
  assert.equal(
    shapeKey(decode()),
    shapeKey({ sample: true, numRows: 1, attention: { splitSize: 256, numSplits: 2, kind: "decode" }, numSeqs: 1, numTokens: 1 }),
  );
  assert.notEqual(shapeKey(decode()), shapeKey(decode({ numSplits: 4, target: 8 })));
  assert.notEqual(shapeKey(decode({ numSplits: 4, target: 8 })), shapeKey(decode({ numSplits: 4, target: 16 })));
  assert.equal(shapeKey({ ...PREFILL, writeKvFirst: undefined }), shapeKey((({ writeKvFirst: _, ...r }) => r)(PREFILL)));
});
