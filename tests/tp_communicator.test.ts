/**
 * The shared-memory CPU communicator across real Web Workers: 3 ranks sum, gather and broadcast
 * buffers larger than a slot (so every collective runs in chunks), every rank gets bit-identical
 * sums, and a rank that aborts makes its peers' pending collective fail instead of waiting. Plus the
 * socket communicator's own checks (its relay over TCP: tests/tp_rendezvous.test.ts).
 */
import { assert, test } from "./harness.ts";
import { CpuCommunicator, createCpuCommGroup } from "../lib/backends/cpu/communicator.ts";
import { COLL_ALL_REDUCE, combineCollective, createSocketCommChannel, SocketCommRelay, SocketCommunicator } from "../lib/backends/cpu/socket_communicator.ts";
import { ValidationError } from "../lib/util/errors.ts";

const COMM_MODULE = new URL("../lib/backends/cpu/communicator.ts", import.meta.url).href;

// Each worker: joins the group as `rank`, runs the collectives, posts the results back.
const WORKER_SRC = `
self.onmessage = async (e) => {
  const { group, rank, n, abortFirst, module } = e.data;
  try {
    const { CpuCommunicator } = await import(module);
    const c = new CpuCommunicator(group, rank);
    if (abortFirst) { c.abort(); self.postMessage({ rank, aborted: true }); return; }
    const x = new Float32Array(n).map((_, i) => Math.fround((rank + 1) * 0.1 + i * 1e-3));
    const sum = new Float32Array(n);
    c.allReduceSum(x, sum, n);
    const gathered = new Float32Array(3 * n);
    c.allGather(x, gathered, n);
    const b = new Float32Array(n);
    c.broadcast(x, b, n, 2);
    self.postMessage({ rank, sum, gathered, b });
  } catch (err) {
    self.postMessage({ rank, error: String(err && err.message || err) });
  }
};`;

function run(group: ReturnType<typeof createCpuCommGroup>, n: number, abortRank = -1): Promise<Record<string, unknown>[]> {
  const url = URL.createObjectURL(new Blob([WORKER_SRC], { type: "text/javascript" }));
  const workers = [0, 1, 2].map(() => new Worker(url, { type: "module" }));
  return Promise.all(workers.map((w, rank) =>
    new Promise<Record<string, unknown>>((resolve) => {
      w.onmessage = (e: MessageEvent) => {
        w.terminate();
        resolve(e.data);
      };
      w.postMessage({ group, rank, n, abortFirst: rank === abortRank, module: COMM_MODULE });
    })
  ));
}

test("cpu communicator: 3 worker ranks all-reduce, all-gather and broadcast in chunks; sums bit-identical on every rank", async () => {
  const n = 1000;
  const group = createCpuCommGroup(3, { slotFloats: 96, timeoutMs: 20_000 }); // 11 chunks per collective
  const out = await run(group, n);
  const xs = [0, 1, 2].map((r) => new Float32Array(n).map((_, i) => Math.fround((r + 1) * 0.1 + i * 1e-3)));
  const want = new Float32Array(n).map((_, i) => xs[0][i] + xs[1][i] + xs[2][i]);
  for (const o of out) {
    assert.equal(o.error, undefined, String(o.error));
    assert.deepEqual(o.sum, want, `rank ${o.rank} sum`);
    const g = o.gathered as Float32Array;
    for (let r = 0; r < 3; r++) assert.deepEqual(g.subarray(r * n, (r + 1) * n), xs[r], `rank ${o.rank} gathered slot ${r}`);
    assert.deepEqual(o.b, xs[2], `rank ${o.rank} broadcast from rank 2`);
  }
});

test("cpu communicator: a rank that aborts makes its peers' collective throw, not wait", async () => {
  const group = createCpuCommGroup(3, { slotFloats: 64, timeoutMs: 60_000 });
  const t0 = Date.now();
  const out = await run(group, 100, 1);
  assert.ok(out[1].aborted);
  for (const r of [0, 2]) assert.match(String(out[r].error), /aborted \(a peer rank failed\)/);
  assert.ok(Date.now() - t0 < 30_000, "peers returned long before the 60 s barrier timeout");
});

test("cpu communicator: one rank needs no peers; bad ranks and short buffers are refused", () => {
  const group = createCpuCommGroup(1);
  const c = new CpuCommunicator(group, 0);
  const x = Float32Array.of(1, 2, 3), y = new Float32Array(3);
  c.allReduceSum(x, y, 3);
  assert.deepEqual(y, x);
  assert.throws(() => new CpuCommunicator(group, 1), ValidationError);
  assert.throws(() => c.allGather(x, new Float32Array(2), 3), /recv holds 2 of 3/);
  assert.throws(() => createCpuCommGroup(0), /worldSize must be a positive integer/);
});

test("socket communicator: one rank needs no relay; bad ranks, roots and short buffers are refused; mismatched collectives are named", () => {
  const one = new SocketCommunicator(createSocketCommChannel(1), 0);
  const x = Float32Array.of(1, 2, 3), y = new Float32Array(3);
  one.allReduceSum(x, y, 3);
  assert.deepEqual(y, x);
  const ch = createSocketCommChannel(2, { capacity: 4 });
  assert.throws(() => new SocketCommunicator(ch, 2), ValidationError);
  const c = new SocketCommunicator(ch, 1);
  assert.throws(() => c.allGather(x, new Float32Array(5), 3), /recv holds 5 of 6/);
  assert.throws(() => c.broadcast(x, y, 3, 2), /root 2 outside \[0, 2\)/);
  assert.throws(() => createSocketCommChannel(3, { capacity: 2 }), /capacity must be an integer ≥ worldSize 3/);
  assert.throws(
    () =>
      combineCollective([
        { op: COLL_ALL_REDUCE, count: 3, root: 0, data: x },
        { op: COLL_ALL_REDUCE, count: 2, root: 0, data: x },
      ]),
    /collective mismatch: rank 0 called op 1 \(3 elements, root 0\), rank 1 op 1 \(2, root 0\)/,
  );
  // An aborted channel: the next call throws at once with the reason, no waiting.
  c.abort("rank 0 is gone");
  const t0 = Date.now();
  assert.throws(() => c.allReduceSum(x, y, 3), /the group was aborted \(a peer rank failed\): rank 0 is gone/);
  assert.ok(Date.now() - t0 < 1000);
});

test("socket communicator: 3 worker ranks over relays (the hub's combining, no TCP) sum, gather and broadcast in chunks like the shared-memory one", async () => {
  const n = 50, N = 3;
  const channels = Array.from({ length: N }, () => createSocketCommChannel(N, { capacity: 7, timeoutMs: 20_000 })); // 8 chunks, gather 17
  const relays = channels.map((ch, r) => new SocketCommRelay(ch, r));
  let stop = false;
  const hub = (async () => {
    while (!stop) {
      const reqs = await Promise.all(relays.map((r) => r.next()));
      if (reqs.some((q) => q === null)) return;
      const out = combineCollective(reqs as NonNullable<(typeof reqs)[number]>[]);
      relays.forEach((r) => r.answer(out));
    }
  })();
  const src = `self.onmessage = async (e) => {
    const { SocketCommunicator } = await import(e.data.module);
    const { channel, rank, n } = e.data;
    const c = new SocketCommunicator(channel, rank);
    const x = new Float32Array(n).map((_, i) => Math.fround((rank + 1) * 0.1 + i * 1e-3));
    const sum = new Float32Array(n); c.allReduceSum(x, sum, n);
    const gathered = new Float32Array(3 * n); c.allGather(x, gathered, n);
    const b = new Float32Array(n); c.broadcast(x, b, n, 2);
    self.postMessage({ sum, gathered, b });
  };`;
  const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  const module = new URL("../lib/backends/cpu/socket_communicator.ts", import.meta.url).href;
  const out = await Promise.all(channels.map((channel, rank) =>
    new Promise<{ sum: Float32Array; gathered: Float32Array; b: Float32Array }>((resolve) => {
      const w = new Worker(url, { type: "module" });
      w.onmessage = (e: MessageEvent) => {
        w.terminate();
        resolve(e.data);
      };
      w.postMessage({ module, channel, rank, n });
    })
  ));
  stop = true;
  relays.forEach((r) => r.abort("done"));
  await hub;
  const xs = [0, 1, 2].map((r) => new Float32Array(n).map((_, i) => Math.fround((r + 1) * 0.1 + i * 1e-3)));
  const want = new Float32Array(n).map((_, i) => xs[0][i] + xs[1][i] + xs[2][i]);
  for (const o of out) {
    assert.deepEqual(o.sum, want);
    for (let r = 0; r < N; r++) assert.deepEqual(o.gathered.subarray(r * n, (r + 1) * n), xs[r]);
    assert.deepEqual(o.b, xs[2]);
  }
});
