/**
 * Paged KV block bookkeeping: reference counts, copy-on-write, and prefix reuse by chained block
 * hashes. Pure host state (block ids only); the executor moves the data.
 */
import { InternalError, ValidationError } from "../util/errors.ts";
import type { Sequence } from "./sequence.ts";

/** No prefix hits (allocate's common case, without an array a call). */
const NO_BLOCKS: readonly number[] = Object.freeze([]);
/** No copy on write (allocate's common case). */
const NO_COPIES: readonly BlockCopy[] = Object.freeze([]);

/** Options of a KvCacheManager. */
export interface KvCacheManagerOptions {
  readonly numBlocks: number;
  readonly tokensPerBlock: number;
  /** Keep full blocks after release and hand them to later sequences with the same prefix. @default true */
  readonly enableBlockReuse?: boolean;
}

/** Block counts. */
export interface KvCacheStats {
  readonly numBlocks: number;
  /** Blocks referenced by at least one sequence. */
  readonly usedBlocks: number;
  /** Blocks no sequence references (cached ones included: they are evicted on demand). */
  readonly freeBlocks: number;
  /** Free blocks still holding a reusable prefix. */
  readonly cachedBlocks: number;
  /** Blocks served from the prefix cache so far (cumulative). */
  readonly reusedBlocks: number;
  /** Copy-on-write copies so far (cumulative). */
  readonly copiedBlocks: number;
}

/** A block copy the executor must perform before the step's forward: KV of `src` → `dst`. */
export type BlockCopy = readonly [src: number, dst: number];

/**
 * Owns the KV block pool of one cache.
 *
 * - `allocate(seq, n)` makes room for `n` more tokens after `seq`'s computed ones: on an empty
 *   table it first takes the longest cached prefix (whole blocks, never the last token, which must
 *   be computed to give logits, nor prompt positions whose logits are wanted) and counts it as
 *   computed, then fresh blocks; a shared partially filled block the sequence will write into is
 *   copied first (copy-on-write).
 * - `fork(parent, child)` shares every block of `parent` with `child` (reference counts).
 * - `commitFullBlocks(seq)` publishes `seq`'s computed full blocks for reuse.
 * - `free(seq)` drops `seq`'s references; a block whose count reaches 0 returns to the pool, and a
 *   published one stays reusable until evicted (least recently freed first).
 *
 * @example
 * ```ts
 * const kv = new KvCacheManager({ numBlocks: 64, tokensPerBlock: 16 });
 * const copies = kv.allocate(seq, seq.numUncomputedTokens); // null when the pool is short
 * // ... run the forward, then:
 * seq.numComputedTokens = seq.numTokens;
 * kv.commitFullBlocks(seq);
 * kv.free(seq);
 * ```
 */
export class KvCacheManager {
  readonly numBlocks: number;
  readonly tokensPerBlock: number;
  readonly enableBlockReuse: boolean;
  readonly #refCount: Int32Array;
  /** Hash each block is published under ("" = none). */
  readonly #blockHash: string[];
  readonly #hashToBlock = new Map<string, number>();
  /** Free blocks holding nothing reusable (a stack). */
  readonly #freeEmpty: number[] = [];
  /** Free published blocks, least recently freed first (Set keeps insertion order). */
  readonly #freeCached = new Set<number>();
  #reused = 0;
  #copied = 0;

  constructor(options: KvCacheManagerOptions) {
    const { numBlocks, tokensPerBlock } = options;
    if (!Number.isInteger(numBlocks) || numBlocks < 1) {
      throw new ValidationError(`KvCacheManager: numBlocks must be a positive integer, got ${numBlocks}`, "numBlocks", numBlocks);
    }
    if (!Number.isInteger(tokensPerBlock) || tokensPerBlock < 1) {
      throw new ValidationError(`KvCacheManager: tokensPerBlock must be a positive integer, got ${tokensPerBlock}`, "tokensPerBlock", tokensPerBlock);
    }
    this.numBlocks = numBlocks;
    this.tokensPerBlock = tokensPerBlock;
    this.enableBlockReuse = options.enableBlockReuse ?? true;
    this.#refCount = new Int32Array(numBlocks);
    this.#blockHash = new Array<string>(numBlocks).fill("");
    for (let b = numBlocks - 1; b >= 0; b--) this.#freeEmpty.push(b);
  }

  get numFreeBlocks(): number {
    return this.#freeEmpty.length + this.#freeCached.size;
  }
  get numUsedBlocks(): number {
    return this.numBlocks - this.numFreeBlocks;
  }

  get stats(): KvCacheStats {
    return {
      numBlocks: this.numBlocks,
      usedBlocks: this.numUsedBlocks,
      freeBlocks: this.numFreeBlocks,
      cachedBlocks: this.#freeCached.size,
      reusedBlocks: this.#reused,
      copiedBlocks: this.#copied,
    };
  }

  /** Reference count of a block (for tests and assertions). */
  refCount(block: number): number {
    return this.#refCount[block];
  }

  /** Blocks needed to hold `numTokens` tokens. */
  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.tokensPerBlock);
  }

  /** Tokens of `seq` an `allocate` on its (empty) table would take from the prefix cache. */
  numCachedPrefixTokens(seq: Sequence): number {
    if (seq.blockTable.length > 0) return seq.numComputedTokens;
    return this.#matchPrefix(seq).length * this.tokensPerBlock;
  }

  /**
   * Makes `seq`'s table cover its computed tokens (prefix hits included) plus `numNewTokens`.
   * Returns the copies to perform before the forward, or null (and changes nothing) when the pool
   * is short.
   */
  allocate(seq: Sequence, numNewTokens: number): readonly BlockCopy[] | null {
    const bs = this.tokensPerBlock;
    const hits: readonly number[] = seq.blockTable.length === 0 && seq.numComputedTokens === 0 ? this.#matchPrefix(seq) : NO_BLOCKS;
    const have = seq.blockTable.length + hits.length;
    const writeFrom = hits.length > 0 ? hits.length * bs : seq.numComputedTokens;
    const target = Math.max(this.blocksFor(writeFrom + numNewTokens), have);
    const writeBlock = Math.floor(writeFrom / bs);
    const cow = writeBlock < seq.blockTable.length && this.#refCount[seq.blockTable[writeBlock]] > 1 ? 1 : 0;
    let revived = 0;
    for (const b of hits) if (this.#refCount[b] === 0) revived++;
    if (target - have + cow + revived > this.numFreeBlocks) return null;

    for (const b of hits) this.#take(b);
    if (hits.length > 0) {
      seq.blockTable.push(...hits);
      seq.numComputedTokens = hits.length * bs;
      seq.numCachedTokens = seq.numComputedTokens;
      this.#reused += hits.length;
    } else if (seq.blockTable.length === 0) {
      seq.numCachedTokens = 0;
    }
    let copies: readonly BlockCopy[] = NO_COPIES;
    if (cow) {
      const src = seq.blockTable[writeBlock];
      const dst = this.#takeFree();
      this.#release(src);
      seq.blockTable[writeBlock] = dst;
      copies = [[src, dst]];
      this.#copied++;
    }
    while (seq.blockTable.length < target) seq.blockTable.push(this.#takeFree());
    return copies;
  }

  /** Shares every block of `parent` with `child` (whose table must be empty). */
  fork(parent: Sequence, child: Sequence): void {
    if (child.blockTable.length > 0) throw new InternalError("KvCacheManager.fork: the child already holds blocks");
    for (const b of parent.blockTable) this.#refCount[b]++;
    child.blockTable = [...parent.blockTable];
    child.blockHashes.length = 0;
    child.blockHashes.push(...parent.blockHashes);
  }

  /** Publishes `seq`'s full, computed blocks for prefix reuse. */
  commitFullBlocks(seq: Sequence): void {
    if (!this.enableBlockReuse) return;
    const full = Math.min(Math.floor(seq.numComputedTokens / this.tokensPerBlock), seq.blockTable.length);
    for (let i = 0; i < full; i++) {
      const b = seq.blockTable[i];
      if (this.#blockHash[b] !== "") continue;
      const h = this.#hashOf(seq, i);
      if (this.#hashToBlock.has(h)) continue; // the same prefix is already published in another block
      this.#blockHash[b] = h;
      this.#hashToBlock.set(h, b);
    }
  }

  /**
   * Speculative decoding rolled `seq` back to its first `numValidTokens` tokens: blocks past the
   * one its next token goes to are freed, and blocks published with rejected tokens are withdrawn
   * from prefix reuse (their slots will be overwritten).
   */
  rollback(seq: Sequence, numValidTokens: number): void {
    const bs = this.tokensPerBlock;
    const fullValid = Math.floor(numValidTokens / bs);
    for (let i = fullValid; i < seq.blockTable.length; i++) {
      const b = seq.blockTable[i];
      const h = this.#blockHash[b];
      if (h === "") continue;
      if (this.#hashToBlock.get(h) === b) this.#hashToBlock.delete(h);
      this.#blockHash[b] = "";
    }
    if (seq.blockHashes.length > fullValid) seq.blockHashes.length = fullValid;
    const keep = this.blocksFor(numValidTokens + 1);
    while (seq.blockTable.length > keep) this.#release(seq.blockTable.pop()!);
  }

  /** Drops `seq`'s references (tail first, so a sequence's last blocks are evicted before its first). */
  free(seq: Sequence): void {
    for (let i = seq.blockTable.length - 1; i >= 0; i--) this.#release(seq.blockTable[i]);
    seq.blockTable = [];
  }

  /** Forgets every published prefix (blocks in use stay in use). */
  resetPrefixCache(): void {
    for (const b of this.#freeCached) this.#freeEmpty.push(b);
    this.#freeCached.clear();
    this.#hashToBlock.clear();
    this.#blockHash.fill("");
  }

  /**
   * Cached blocks holding `seq`'s leading full blocks, never covering its last token nor a prompt
   * position whose logits are still wanted (`group.promptLogitsFrom`).
   */
  #matchPrefix(seq: Sequence): number[] {
    if (!this.enableBlockReuse) return [];
    const maxBlocks = Math.floor(Math.min(seq.numTokens - 1, seq.group.promptLogitsFrom) / this.tokensPerBlock);
    const hits: number[] = [];
    for (let i = 0; i < maxBlocks; i++) {
      const b = this.#hashToBlock.get(this.#hashOf(seq, i));
      if (b === undefined) break;
      hits.push(b);
    }
    return hits;
  }

  /** Hash of tokens [0, (i+1)·blockSize) of `seq`, chained block by block and memoized on it. */
  #hashOf(seq: Sequence, i: number): string {
    const bs = this.tokensPerBlock;
    for (let j = seq.blockHashes.length; j <= i; j++) {
      seq.blockHashes.push(chainHash(j === 0 ? seq.group.cacheSalt : seq.blockHashes[j - 1], seq.tokenIds, j * bs, (j + 1) * bs));
    }
    return seq.blockHashes[i];
  }

  #take(b: number): void {
    if (this.#refCount[b] === 0) this.#freeCached.delete(b);
    this.#refCount[b]++;
  }

  #takeFree(): number {
    let b = this.#freeEmpty.pop();
    if (b === undefined) {
      // Evict the least recently freed published block.
      const first = this.#freeCached.values().next();
      if (first.done) throw new InternalError("KvCacheManager: out of blocks (allocate checks capacity first; this is a bug)");
      b = first.value;
      this.#freeCached.delete(b);
      this.#hashToBlock.delete(this.#blockHash[b]);
      this.#blockHash[b] = "";
    }
    this.#refCount[b] = 1;
    return b;
  }

  #release(b: number): void {
    if (this.#refCount[b] <= 0) throw new InternalError(`KvCacheManager: block ${b} released more often than taken`);
    if (--this.#refCount[b] > 0) return;
    if (this.#blockHash[b] !== "") this.#freeCached.add(b);
    else this.#freeEmpty.push(b);
  }
}

/**
 * 64-bit chained hash of a block (two independent 32-bit FNV-1a/murmur lanes) over the parent
 * block's hash and the block's token ids, as a string key.
 */
function chainHash(parent: string, tokens: readonly number[], from: number, to: number): string {
  let h1 = 0x811c9dc5 ^ parent.length, h2 = 0x9747b28c;
  for (let i = 0; i < parent.length; i++) {
    const c = parent.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  for (let i = from; i < to; i++) {
    const t = tokens[i];
    h1 = Math.imul(h1 ^ (t & 0xffff), 0x01000193);
    h1 = Math.imul(h1 ^ (t >>> 16), 0x01000193);
    h2 = Math.imul(h2 ^ t, 0x5bd1e995);
    h2 ^= h2 >>> 13;
    h2 = Math.imul(h2, 0xc2b2ae35);
  }
  h1 ^= h1 >>> 16;
  h2 ^= h2 >>> 16;
  return (h1 >>> 0).toString(36) + "." + (h2 >>> 0).toString(36);
}
