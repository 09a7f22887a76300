// KvCacheManager: paged blocks, reference counts, copy-on-write, prefix reuse by chained hashes.
import { KvCacheManager } from "../lib/executor/kv_cache_manager.ts";
import { type Sequence, SequenceGroup } from "../lib/executor/sequence.ts";
import { assert, test } from "./harness.ts";

let nextId = 0;
function seqOf(tokens: number[], fanout = 1): Sequence {
  return new SequenceGroup(nextId++, tokens, { fanout, arrival: nextId }).seqs[0];
}
const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

/** Allocates and "computes" all of seq's uncomputed tokens, publishing full blocks. */
function runAll(kv: KvCacheManager, seq: Sequence): void {
  const copies = kv.allocate(seq, seq.numUncomputedTokens);
  assert.ok(copies, "allocate should succeed");
  seq.numComputedTokens = seq.numTokens;
  kv.commitFullBlocks(seq);
}

test("allocate covers the tokens block by block; free returns every block", () => {
  const kv = new KvCacheManager({ numBlocks: 8, tokensPerBlock: 4 });
  const s = seqOf(range(10));
  assert.deepEqual(kv.allocate(s, 10), []);
  assert.equal(s.blockTable.length, 3);
  assert.equal(kv.stats.usedBlocks, 3);
  assert.equal(new Set(s.blockTable).size, 3);
  s.numComputedTokens = 10;
  s.tokenIds.push(99);
  assert.deepEqual(kv.allocate(s, 1), []); // position 10 still fits block 2
  assert.equal(s.blockTable.length, 3);
  s.numComputedTokens = 11;
  s.tokenIds.push(98, 97);
  kv.allocate(s, 2); // positions 11, 12: a fourth block
  assert.equal(s.blockTable.length, 4);
  kv.free(s);
  assert.deepEqual(s.blockTable, []);
  assert.equal(kv.stats.usedBlocks, 0);
  assert.equal(kv.stats.freeBlocks, 8);
});

test("allocate returns null and changes nothing when the pool is short", () => {
  const kv = new KvCacheManager({ numBlocks: 3, tokensPerBlock: 4 });
  const a = seqOf(range(8));
  kv.allocate(a, 8);
  const b = seqOf(range(8, 100));
  assert.equal(kv.allocate(b, 8), null);
  assert.deepEqual(b.blockTable, []);
  assert.equal(kv.stats.usedBlocks, 2);
  assert.deepEqual(kv.allocate(b, 4), []);
  assert.equal(kv.stats.freeBlocks, 0);
});

test("prefix reuse: a second sequence with the same leading blocks takes them, never its last token", () => {
  const kv = new KvCacheManager({ numBlocks: 16, tokensPerBlock: 4 });
  const a = seqOf(range(10)); // blocks [0-3] [4-7] full, [8-9] partial
  runAll(kv, a);
  const b = seqOf([...range(8), 50, 51, 52]);
  assert.equal(kv.numCachedPrefixTokens(b), 8);
  kv.allocate(b, 3);
  assert.equal(b.numComputedTokens, 8);
  assert.equal(b.numCachedTokens, 8);
  assert.deepEqual(b.blockTable.slice(0, 2), a.blockTable.slice(0, 2));
  assert.equal(kv.refCount(a.blockTable[0]), 2);
  assert.equal(kv.stats.reusedBlocks, 2);
  // An identical 8-token prompt reuses only the first block: its last token must be computed.
  const c = seqOf(range(8));
  assert.equal(kv.numCachedPrefixTokens(c), 4);
  // A different first block breaks the chain even when later blocks match.
  const d = seqOf([7, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(kv.numCachedPrefixTokens(d), 0);
});

test("released published blocks stay reusable until evicted, least recently freed first", () => {
  const kv = new KvCacheManager({ numBlocks: 4, tokensPerBlock: 2 });
  const a = seqOf(range(5)); // 2 full blocks + 1
  runAll(kv, a);
  kv.free(a);
  assert.equal(kv.stats.usedBlocks, 0);
  assert.equal(kv.stats.cachedBlocks, 2);
  const b = seqOf(range(5));
  kv.allocate(b, 1);
  assert.equal(b.numCachedTokens, 4);
  assert.equal(kv.stats.cachedBlocks, 0);
  kv.free(b);
  // Fill the pool with unrelated tokens: the cached blocks get evicted.
  const c = seqOf(range(8, 200));
  kv.allocate(c, 8);
  assert.equal(kv.stats.cachedBlocks, 0);
  kv.free(c);
  assert.equal(kv.numCachedPrefixTokens(seqOf(range(5))), 0);
});

test("enableBlockReuse false never matches", () => {
  const kv = new KvCacheManager({ numBlocks: 8, tokensPerBlock: 2, enableBlockReuse: false });
  const a = seqOf(range(6));
  runAll(kv, a);
  kv.free(a);
  assert.equal(kv.numCachedPrefixTokens(seqOf(range(6))), 0);
  assert.equal(kv.stats.cachedBlocks, 0);
});

test("fork shares every block; the shared partial block is copied before a child writes into it", () => {
  const kv = new KvCacheManager({ numBlocks: 16, tokensPerBlock: 4 });
  const root = seqOf(range(6), 3); // blocks: [0-3] full, [4-5] partial
  runAll(kv, root);
  const g = root.group;
  const children = [g.addChild(root, 1), g.addChild(root, 2)];
  for (const c of children) kv.fork(root, c);
  const [full, partial] = root.blockTable;
  assert.equal(kv.refCount(full), 3);
  assert.equal(kv.refCount(partial), 3);
  assert.equal(kv.stats.usedBlocks, 2);
  // Each sequence appends its own token at position 6 (inside the shared partial block).
  const seqs = [root, ...children];
  seqs.forEach((s, i) => s.tokenIds.push(300 + i));
  const c0 = kv.allocate(seqs[0], 1)!;
  const c1 = kv.allocate(seqs[1], 1)!;
  const c2 = kv.allocate(seqs[2], 1)!;
  assert.equal(c0.length, 1);
  assert.equal(c1.length, 1);
  assert.deepEqual(c2, [], "the last holder writes in place");
  assert.equal(c0[0][0], partial);
  assert.equal(c1[0][0], partial);
  assert.equal(seqs[2].blockTable[1], partial);
  assert.notEqual(seqs[0].blockTable[1], seqs[1].blockTable[1]);
  assert.equal(kv.refCount(partial), 1);
  assert.equal(kv.refCount(full), 3, "full blocks stay shared");
  assert.equal(kv.stats.copiedBlocks, 2);
  for (const s of seqs) kv.free(s);
  assert.equal(kv.stats.usedBlocks, 0);
});

test("copy-on-write counts against capacity", () => {
  const kv = new KvCacheManager({ numBlocks: 2, tokensPerBlock: 4 });
  const root = seqOf(range(3), 2);
  runAll(kv, root);
  const child = root.group.addChild(root, 1);
  kv.fork(root, child);
  const filler = seqOf([9, 9, 9]);
  kv.allocate(filler, 3);
  child.tokenIds.push(5);
  assert.equal(kv.allocate(child, 1), null, "no free block for the copy");
  kv.free(filler);
  assert.equal(kv.allocate(child, 1)!.length, 1);
});

test("constructor rejects bad sizes naming the field", () => {
  assert.throws(() => new KvCacheManager({ numBlocks: 0, tokensPerBlock: 4 }), /numBlocks/);
  assert.throws(() => new KvCacheManager({ numBlocks: 4, tokensPerBlock: 0 }), /tokensPerBlock/);
});
