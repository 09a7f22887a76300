// Zero-copy step staging (lib/backends/cuda/stage_launch.ts, kernels/staging.cu) on the fake CUDA device: stage_in and
// stage_out stand-ins read and write only through their launch arguments, as the kernels do. stage_in over a packed
// slot must leave the device staging exactly as the copy path leaves it (the staged words copied, the sampled ids kept,
// forwarded token ids taken from the previous step's sampled ids), and stage_out must bring back the step's ids.
import { type KernelLaunch, kernelSignature } from "../lib/backends/cuda/launch_plan.ts";
import { packForwardRows, stageInLaunch, stageOutLaunch } from "../lib/backends/cuda/stage_launch.ts";
import { packStep, type StagingLayout, stagingLayout } from "../lib/backends/cuda/step_staging.ts";
import { ValidationError } from "../lib/util/errors.ts";
import { FakeMemory, step } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

/** The kernels' stand-ins: every thread of the grid, each argument as the kernel reads it. */
function run(mem: FakeMemory, l: KernelLaunch): void {
  const sig = kernelSignature(l.kernel).params;
  assert.equal(l.args.length, sig.length, `${l.kernel}: arguments`);
  sig.forEach((k, i) => assert.equal(typeof l.args[i], k === "ptr" ? "bigint" : "number", `${l.kernel}: argument ${i}`));
  const threads = l.grid[0] * l.block;
  if (l.kernel === "stage_in") {
    const [host, dev, from, end, fwd, tokOff, tokCap, numTokens, sampled] = l.args as [bigint, bigint, number, number, bigint, number, number, number, bigint];
    for (let i = 0; i < threads; i++) {
      const w = from + i;
      if (w >= end) continue;
      const t = w - tokOff;
      if (t >= 0 && t < 2 * tokCap && t % tokCap >= numTokens) continue;
      const word = (p: bigint, k: number): number => mem.i32(p + BigInt(4 * k), 1)[0];
      let v = word(host, w);
      if (t >= 0 && t < numTokens && fwd !== 0n) {
        const r = word(fwd, t);
        if (r >= 0) v = word(sampled, r);
      }
      mem.i32(dev + BigInt(4 * w), 1)[0] = v;
    }
  } else if (l.kernel === "stage_out") {
    const [sampled, host, rows] = l.args as [bigint, bigint, number];
    for (let r = 0; r < Math.min(threads, rows); r++) mem.i32(host + BigInt(4 * r), 1)[0] = mem.i32(sampled + BigInt(4 * r), 1)[0];
  } else {
    throw new Error(`no stand-in for ${l.kernel}`);
  }
}

/** A host slot (hostWords) and the device staging (words), both on the fake device, the device's sampled ids set. */
function setup(L: StagingLayout) {
  const mem = new FakeMemory();
  const host = mem.alloc(L.hostWords * 4), dev = mem.alloc(L.words * 4);
  const h = mem.i32(host, L.hostWords);
  const views = { i32: h, f32: mem.f32(host, L.hostWords), u32: mem.u32(host, L.hostWords) };
  const d = mem.i32(dev, L.words);
  d.fill(-99);
  for (let r = 0; r < L.capSeqs; r++) d[L.offsets.sampledIds + r] = 1000 + r;
  return { mem, host, dev, h, d, views };
}

/** Words [from, end) of the device staging: the host's, but token ids / positions past `numTokens` (not read: still -99) and `skip`. */
function expectStaged(L: StagingLayout, d: Int32Array, h: Int32Array, end: number, numTokens: number, skip = (_w: number) => false): void {
  const o = L.offsets, cap = o.positions - o.tokenIds;
  for (let w = o.temperature; w < end; w++) {
    if (skip(w)) continue;
    const t = w - o.tokenIds;
    const unread = t >= 0 && t < 2 * cap && t % cap >= numTokens;
    assert.equal(d[w], unread ? -99 : h[w], `word ${w}`);
  }
}

test("stage_in: the staged words as the copy path sends them; the device's sampled ids stay", () => {
  const L = stagingLayout(64, 6, 24);
  const { mem, host, dev, h, d, views } = setup(L);
  const inp = step([{ ids: [1, 2, 3], pos: 4, blocks: [1, 2] }, { ids: [5, 6], pos: 0, blocks: [3] }], 30);
  const end = packStep(L, views.i32, views.f32, views.u32, inp, null);
  run(mem, stageInLaunch(L, host, dev, end, false, inp.tokenIds.length));
  expectStaged(L, d, h, end, inp.tokenIds.length);
  assert.deepEqual(Array.from(d.subarray(0, 6)), [1000, 1001, 1002, 1003, 1004, 1005], "sampled ids untouched");
  assert.equal(d[end], -99, "nothing past the staged words");
});

test("stage_in: forwarded token ids from the previous step's sampled ids (a padded decode bucket); stage_out brings ids back", () => {
  const L = stagingLayout(64, 8, 4);
  const { mem, host, dev, h, d, views } = setup(L);
  const inp = step([{ ids: [7], pos: 3, blocks: [0] }, { ids: [8], pos: 5, blocks: [1, 2] }, { ids: [9], pos: 1, blocks: [3] }], 4);
  const pad = { bucket: 4, scratchBlock: 11 };
  const end = packStep(L, views.i32, views.f32, views.u32, inp, pad);
  packForwardRows(L, h, Int32Array.of(2, -1, 0), 4, 3);
  assert.deepEqual(Array.from(h.subarray(L.forwardRows, L.forwardRows + 4)), [2, -1, 0, -1], "the dummy token: -1");
  run(mem, stageInLaunch(L, host, dev, end, true, 4));
  const o = L.offsets;
  assert.deepEqual(Array.from(d.subarray(o.tokenIds, o.tokenIds + 4)), [1002, 8, 1000, 0], "rows 2 and 0 forwarded; the host's 8; the dummy's 0");
  expectStaged(L, d, h, end, 4, (w) => w >= o.tokenIds && w < o.tokenIds + 4);
  // The step samples (device words [0, 4)); stage_out writes them into the host slot's words [0, R).
  d.set([41, 42, 43, 44], o.sampledIds);
  h.fill(-5, 0, 8);
  run(mem, stageOutLaunch(L, host, dev, 3));
  assert.deepEqual(Array.from(h.subarray(0, 4)), [41, 42, 43, -5]);
});

test("stage_in covers large steps: every staged word of a 64-sequence step with long block tables", () => {
  const L = stagingLayout(512, 64, 300);
  const { mem, host, dev, h, d, views } = setup(L);
  const seqs = Array.from({ length: 64 }, (_, s) => ({ ids: [s + 1], pos: 10 * s, blocks: Array.from({ length: 300 }, (_, b) => s * 300 + b) }));
  const end = packStep(L, views.i32, views.f32, views.u32, step(seqs, 300), { bucket: 64, scratchBlock: 0 });
  assert.ok(end - L.offsets.temperature > 256 * 70, "several blocks of the grid");
  run(mem, stageInLaunch(L, host, dev, end, false, 64));
  expectStaged(L, d, h, end, 64);
});

test("packForwardRows: a row past the previous step's rows is refused with the field and value", () => {
  const L = stagingLayout(16, 4, 4);
  const h = new Int32Array(L.hostWords);
  assert.throws(() => packForwardRows(L, h, Int32Array.of(0, 3), 2, 3), (e: unknown) => e instanceof ValidationError && /rows\[1\] is 3/.test(e.message));
  assert.equal(L.hostWords, L.words + 64, "host slots carry the forwarded rows past the device's words");
});
