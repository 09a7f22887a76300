// bench/stamp_gaps.ts: LLMRT_STAMP records (kernels/common.cuh) read back as launches and the transitions between them,
// on hand-made records (no device).
import { launchesOf, maxOverlap, timerStep, transitions } from "../bench/stamp_gaps.ts";
import { assert, test } from "./harness.ts";

/** A record: entry / wait / end in ns, tag, SM, block, key pointer. */
function rec(rows: [number, number, number, number, number, number, bigint][]): BigUint64Array {
  const r = new BigUint64Array(4 * rows.length);
  rows.forEach(([t0, t1, t2, tag, sm, blk, key], i) => {
    r[4 * i] = BigInt(t0);
    r[4 * i + 1] = BigInt(t1);
    r[4 * i + 2] = BigInt(t2);
    r[4 * i + 3] = (BigInt(tag) << 56n) | (BigInt(sm) << 48n) | (BigInt(blk) << 32n) | ((key >> 8n) & 0xffffffffn);
  });
  return r;
}

test("stamp_gaps: launches by (tag, key) in entry order, residual GEMVs named by their place, transitions' means", () => {
  const W1 = 0x7f0000001000n, KV = 0x7f0000200000n, W2 = 0x7f0000400000n, W3 = 0x7f0000600000n, W4 = 0x7f0000800000n;
  const base = 1_000_000;
  const r = rec([
    // qkv: 2 blocks on SM 0 at once, ends 5 and 6 µs
    [base, base + 1000, base + 5000, 0x18, 0, 0, W1],
    [base + 100, base + 1100, base + 6000, 0x18, 0, 1, W1],
    // attention: one block entering at 2 µs, its wait passed at 6.5, end 9
    [base + 2000, base + 6500, base + 9000, 0x30, 3, 0, KV],
    // o_proj (plain residual): enters 3 µs, passes 9.5, ends 12
    [base + 3000, base + 9500, base + 12000, 0x11, 4, 0, W2],
    // gate_up, then the split-row residual (down)
    [base + 4000, base + 12500, base + 20000, 0x1a, 5, 0, W3],
    [base + 13000, base + 20700, base + 25000, 0x21, 6, 0, W4],
  ]);
  assert.equal(timerStep(r, 6), 1000);
  const ls = launchesOf(r, 6);
  assert.deepEqual(ls.map((l) => l.name), ["qkv", "attn", "o_proj", "gate_up", "down"]);
  assert.equal(ls[0].n, 2);
  assert.equal(ls[0].perSm, 2);
  assert.equal(ls[0].firstT0, 0);
  assert.equal(ls[0].maxT2, 6);
  const tr = transitions([ls, ls]);
  const qa = tr.find((t) => t.key === "qkv → attn")!;
  assert.equal(qa.count, 2);
  assert.ok(Math.abs(qa.release - 0.5) < 1e-9); // 6.5 − 6
  assert.ok(Math.abs(qa.span - 3) < 1e-9); // 9 − 6
  assert.ok(Math.abs(qa.lag - 1.9) < 1e-9); // 2 − 0.1
  const gd = tr.find((t) => t.key === "gate_up → down")!;
  assert.ok(Math.abs(gd.release - 0.7) < 1e-9);
  assert.ok(Math.abs(gd.allIn - -7) < 1e-9); // 13 − 20
  // A second launch of the same key 50 µs later is its own launch.
  const r2 = rec([
    [base, base + 100, base + 1000, 0x18, 0, 0, W1],
    [base + 50_000, base + 50_100, base + 51_000, 0x18, 0, 0, W1],
  ]);
  assert.equal(launchesOf(r2, 2).length, 2);
  assert.equal(maxOverlap([0, 1, 2], [3, 1.5, 4]), 2);
});
