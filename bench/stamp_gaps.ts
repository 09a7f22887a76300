/**
 * The per-block kernel stamps of an LLMRT_STAMP build (kernels/common.cuh) read back as launches and the transitions
 * between them (bench/decode_gaps.ts). Pure: no device.
 *
 * A record is 4 u64: globaltimer at the block's entry, when its thread 0 passed pdlWait (0: it never waited), at its
 * end, and tag << 56 | smid << 48 | (block index & 0xffff) << 32 | (key >> 8) & 0xffffffff.
 */

/** Tags of the stamped entry points (gemv.cu: 0x10 fused / 0x20 split-row, + 8 with the norm prologue, + mode; 0x30 attention). */
export const STAMP_NAMES: Readonly<Record<number, string>> = {
  0x18: "qkv",
  0x28: "qkv",
  0x30: "attn",
  0x31: "attn",
  0x11: "res",
  0x21: "res",
  0x1a: "gate_up",
  0x2a: "gate_up",
  0x1b: "lm_head",
  0x2b: "lm_head",
};

/** One launch's blocks summarised; times in µs from the replay's first stamp. */
export interface LaunchSum {
  readonly name: string;
  readonly n: number;
  readonly sms: number;
  readonly firstT0: number;
  readonly lastT0: number;
  readonly minT1: number;
  readonly maxT1: number;
  readonly minT2: number;
  readonly p10T2: number;
  readonly p90T2: number;
  readonly maxT2: number;
  /** Most of this launch's blocks on one SM at once (entry to end). */
  readonly perSm: number;
}

/** Most intervals [a[i], b[i]) open at once. */
export function maxOverlap(a: readonly number[], b: readonly number[]): number {
  const ev: [number, number][] = [...a.map((t): [number, number] => [t, 1]), ...b.map((t): [number, number] => [t, -1])];
  ev.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let cur = 0, best = 0;
  for (const [, d] of ev) best = Math.max(best, cur += d);
  return best;
}

/**
 * One replay's `n` records → its launches in order of their first block's entry. Records group by (tag, key); a group
 * whose entries jump by more than `splitUs` is several launches of the same key (split there). `names` maps a tag to a
 * name; a residual GEMV ("res") is named o_proj after the attention and down after gate_up.
 */
export function launchesOf(rec: BigUint64Array, n: number, names: Readonly<Record<number, string>> = STAMP_NAMES, splitUs = 20): LaunchSum[] {
  const t0 = new Float64Array(n), t1 = new Float64Array(n), t2 = new Float64Array(n);
  const tag = new Int32Array(n), sm = new Int32Array(n), key = new Float64Array(n);
  let base = Infinity;
  for (let i = 0; i < n; i++) base = Math.min(base, Number(rec[4 * i]));
  for (let i = 0; i < n; i++) {
    t0[i] = (Number(rec[4 * i]) - base) / 1000;
    t1[i] = rec[4 * i + 1] > 0n ? (Number(rec[4 * i + 1]) - base) / 1000 : NaN;
    t2[i] = (Number(rec[4 * i + 2]) - base) / 1000;
    const meta = rec[4 * i + 3];
    tag[i] = Number(meta >> 56n);
    sm[i] = Number((meta >> 48n) & 0xffn);
    key[i] = Number(meta & 0xffffffffn);
  }
  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const g = tag[i] * 2 ** 32 + key[i];
    let l = groups.get(g);
    if (!l) groups.set(g, l = []);
    l.push(i);
  }
  const out: LaunchSum[] = [];
  const summarise = (part: number[], tg: number): void => {
    const e2 = part.map((j) => t2[j]).sort((a, b) => a - b);
    const w = part.map((j) => t1[j]).filter((x) => !Number.isNaN(x));
    const bySm = new Map<number, number[]>();
    for (const j of part) {
      let l = bySm.get(sm[j]);
      if (!l) bySm.set(sm[j], l = []);
      l.push(j);
    }
    let perSm = 0;
    for (const js of bySm.values()) perSm = Math.max(perSm, maxOverlap(js.map((j) => t0[j]), js.map((j) => t2[j])));
    let first = Infinity, last = -Infinity;
    for (const j of part) first = Math.min(first, t0[j]), last = Math.max(last, t0[j]);
    out.push({
      name: names[tg] ?? `tag${tg.toString(16)}`,
      n: part.length,
      sms: bySm.size,
      firstT0: first,
      lastT0: last,
      minT1: w.length ? Math.min(...w) : NaN,
      maxT1: w.length ? Math.max(...w) : NaN,
      minT2: e2[0],
      p10T2: e2[Math.floor(0.1 * (e2.length - 1))],
      p90T2: e2[Math.floor(0.9 * (e2.length - 1))],
      maxT2: e2[e2.length - 1],
      perSm,
    });
  };
  for (const idx of groups.values()) {
    idx.sort((x, y) => t0[x] - t0[y]);
    let part: number[] = [], prev = -Infinity;
    for (const j of idx) {
      if (t0[j] - prev > splitUs && part.length) {
        summarise(part, tag[part[0]]);
        part = [];
      }
      part.push(j);
      prev = t0[j];
    }
    if (part.length) summarise(part, tag[part[0]]);
  }
  out.sort((a, b) => a.firstT0 - b.firstT0);
  return out.map((l, i) =>
    l.name !== "res" || i === 0 ? l : { ...l, name: out[i - 1].name === "attn" ? "o_proj" : out[i - 1].name === "gate_up" ? "down" : "res" }
  );
}

/** Means over every occurrence of one transition `prev → cur` (µs). */
export interface Transition {
  readonly key: string;
  readonly count: number;
  readonly blocks: number;
  readonly perSm: number;
  /** cur's last block end − prev's last block end: what cur adds to the chain. */
  readonly span: number;
  /** cur's first block entry − prev's last block entry (the trigger → launch latency, or waiting for free slots). */
  readonly lag: number;
  /** cur's first pdlWait passed − prev's last block end (completion → dependents released). */
  readonly release: number;
  /** cur's last block end − cur's first pdlWait passed. */
  readonly busy: number;
  /** prev's last block end − prev's 90th-percentile block end. */
  readonly prevTail: number;
  /** cur's last block entry − prev's last block end (> 0: cur's later waves start after prev is done). */
  readonly allIn: number;
  /** cur's 90th-percentile block end − cur's first pdlWait passed. */
  readonly busy90: number;
}

/** The transitions of replays that have the same launches (by name, in order) as the first one. */
export function transitions(replays: readonly (readonly LaunchSum[])[]): Transition[] {
  if (replays.length === 0) return [];
  const names = replays[0].map((l) => l.name);
  const use = replays.filter((r) => r.length === names.length && r.every((l, i) => l.name === names[i]));
  const acc = new Map<string, { n: number; blocks: number; perSm: number; sums: number[] }>();
  for (const r of use) {
    for (let i = 1; i < r.length; i++) {
      const p = r[i - 1], q = r[i];
      const k = `${p.name} → ${q.name}`;
      let a = acc.get(k);
      if (!a) acc.set(k, a = { n: 0, blocks: q.n, perSm: 0, sums: [0, 0, 0, 0, 0, 0, 0] });
      a.n++;
      a.perSm = Math.max(a.perSm, q.perSm);
      const v = [q.maxT2 - p.maxT2, q.firstT0 - p.lastT0, q.minT1 - p.maxT2, q.maxT2 - q.minT1, p.maxT2 - p.p90T2, q.lastT0 - p.maxT2, q.p90T2 - q.minT1];
      v.forEach((x, j) => (a!.sums[j] += Number.isNaN(x) ? 0 : x));
    }
  }
  return [...acc].map(([key, a]) => {
    const m = a.sums.map((s) => s / a.n);
    return { key, count: a.n, blocks: a.blocks, perSm: a.perSm, span: m[0], lag: m[1], release: m[2], busy: m[3], prevTail: m[4], allIn: m[5], busy90: m[6] };
  });
}

/** The smallest step between the distinct values of up to `limit` end stamps of a replay (the timer's resolution seen), ns. */
export function timerStep(rec: BigUint64Array, n: number, limit = 20000): number {
  const ts = [...new Set(Array.from({ length: Math.min(n, limit) }, (_, i) => Number(rec[4 * i + 2])))].sort((a, b) => a - b);
  let tick = Infinity;
  for (let i = 1; i < ts.length; i++) tick = Math.min(tick, ts[i] - ts[i - 1]);
  return tick;
}
