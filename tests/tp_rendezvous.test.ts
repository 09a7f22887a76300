/**
 * The `--tp-master` link on 127.0.0.1, below the session: rank 0's hub (tp_hub.ts) driven
 * directly, ranks played by raw sockets speaking the frame protocol. The hub hands the NCCL id
 * rank 0 made to ranks 1 and 2 (one of them connecting before the hub listens), refuses wrong group
 * sizes, out-of-range and duplicate ranks, answers for a rank that never comes after the rendezvous
 * timeout, combines CPU collectives of three ranks in rank order, and aborts rank 0's collective
 * when a rank's connection drops (with NCCL: aborts rank 0's communicator, the NCCL call faked).
 * Plus the frame reader, the message codec and the NCCL abort cells.
 */
import type * as net from "node:net";
import { assert, test } from "./harness.ts";
import { COLL_ALL_GATHER, COLL_ALL_REDUCE, COLL_BROADCAST, createSocketCommChannel, decodeColl, encodeColl } from "../lib/backends/cpu/socket_communicator.ts";
import { abortNcclCell, claimNcclCellForDestroy, createNcclAbortCell } from "../lib/cuda/nccl.ts";
import { TpHub } from "../lib/runtime/tp_hub.ts";
import {
  connectWithRetry,
  decodeMessage,
  encodeMessage,
  F_ABORT,
  F_COLL,
  F_HELLO,
  F_INIT,
  F_REFUSE,
  frame,
  FrameReader,
  parseMaster,
  sendFrame,
  TP_PROTOCOL,
} from "../lib/runtime/tp_rendezvous.ts";
import { controlLayout, ERROR_BYTES, type HubSetup, type RemoteInit, type TpShared } from "../lib/runtime/tp_wire.ts";
import { ValidationError, WorkerError } from "../lib/util/errors.ts";
import { freePort } from "./tp_ports.ts";

const ID = Uint8Array.from({ length: 128 }, (_, i) => (i * 37 + 11) & 255);

function shared(N: number): TpShared {
  return {
    control: new SharedArrayBuffer(controlLayout(N).words * 4),
    errors: new SharedArrayBuffer(N * ERROR_BYTES),
    logits: new SharedArrayBuffer(4),
    sampled: new SharedArrayBuffer(4),
    values: new SharedArrayBuffer(N * 8),
  };
}

function setup(address: string, N: number, sh: TpShared, o: { channel?: HubSetup["channel"]; timeoutMs?: number } = {}): HubSetup {
  return {
    cmd: "hub",
    seq: 0,
    rankModule: "",
    entry: "TpHub",
    address,
    worldSize: N,
    ranks: Array.from({ length: N - 1 }, (_, i) => i + 1),
    shared: sh,
    channel: o.channel ?? null,
    init: {
      worldSize: N,
      initSeq: 1,
      options: { backend: "cpu" } as unknown as RemoteInit["options"],
      comm: o.channel ? { kind: "socket" } : { kind: "nccl", uniqueId: ID },
      engine: { build: {} as RemoteInit["engine"]["build"], dtype: "float32", quant: null, fingerprints: Array(N).fill("f") },
      stepTimeoutMs: 10_000,
    },
    rendezvousTimeoutMs: o.timeoutMs ?? 10_000,
  };
}

/** A rank played by a socket: hello, then every frame it gets. */
async function rank(address: string, r: number, N: number): Promise<{ sock: net.Socket; next: () => Promise<[number, Uint8Array]> }> {
  const sock = await connectWithRetry(address, 10_000, r);
  const frames: [number, Uint8Array][] = [];
  const waiters: ((f: [number, Uint8Array]) => void)[] = [];
  const reader = new FrameReader((t, p) => {
    const w = waiters.shift();
    if (w) w([t, p]);
    else frames.push([t, p]);
  });
  sock.on("data", (c: Uint8Array) => reader.push(new Uint8Array(c)));
  sock.on("error", () => {});
  sendFrame(sock, F_HELLO, { protocol: TP_PROTOCOL, rank: r, worldSize: N });
  return { sock, next: () => frames.length ? Promise.resolve(frames.shift()!) : new Promise((res) => waiters.push(res)) };
}

function rankError(sh: TpShared, N: number, r: number): string {
  const L = controlLayout(N), ctl = new Int32Array(sh.control);
  return new TextDecoder().decode(new Uint8Array(sh.errors, r * ERROR_BYTES, Atomics.load(ctl, L.errorLen(r))).slice());
}

test("tp link: frames split anywhere reassemble; messages keep typed arrays and Maps; bad addresses are refused", () => {
  const msg = {
    cmd: "run",
    seq: 7,
    inputs: { tokenIds: Int32Array.of(1, 2, 3), seed: Uint32Array.of(4294967295), t: Float32Array.of(0.5) },
    m: new Map([["a", 1]]),
  };
  const bytes = new Uint8Array([...frame(F_COLL, Uint8Array.of(9)), ...frame(F_HELLO, encodeMessage(msg)), ...frame(F_ABORT, new Uint8Array(0))]);
  const got: [number, Uint8Array][] = [];
  const reader = new FrameReader((t, p) => got.push([t, p]));
  for (let i = 0; i < bytes.length; i += 3) reader.push(bytes.subarray(i, i + 3));
  assert.deepEqual(got.map(([t]) => t), [F_COLL, F_HELLO, F_ABORT]);
  assert.deepEqual(got[0][1], Uint8Array.of(9));
  assert.deepEqual(decodeMessage(got[1][1]), msg);
  assert.throws(() => new FrameReader(() => {}).push(Uint8Array.of(0, 0, 0, 0, 1)), /malformed frame/);
  assert.deepEqual(parseMaster("[::1]:29500"), { host: "::1", port: 29500 });
  assert.throws(() => parseMaster("10.0.0.1"), ValidationError);
  assert.throws(() => parseMaster("h:0"), /--tp-master: expected host:port/);
  const c = decodeColl(encodeColl({ op: COLL_BROADCAST, count: 2, root: 1, data: Float32Array.of(1.5, -2) }));
  assert.deepEqual([c.op, c.count, c.root, [...c.data]], [COLL_BROADCAST, 2, 1, [1.5, -2]]);
});

test("tp link: the hub hands rank 0's NCCL id to ranks 1 and 2 (one early); wrong sizes, ranks and duplicates are refused", async () => {
  const address = `127.0.0.1:${await freePort()}`;
  const early = rank(address, 2, 3); // before the hub listens: retries
  await new Promise((r) => setTimeout(r, 300));
  const sh = shared(3);
  const hub = new TpHub();
  hub.handle(setup(address, 3, sh));
  const wrongSize = await rank(address, 1, 4);
  const [t0, p0] = await wrongSize.next();
  assert.equal(t0, F_REFUSE);
  assert.match(new TextDecoder().decode(p0), /rank 1 expects 4 ranks; rank 0 serves a group of 3/);
  const outside = await rank(address, 3, 3);
  assert.match(new TextDecoder().decode((await outside.next())[1]), /rank 3 outside \[1, 3\)/);
  const r2 = await early;
  const dup = await rank(address, 2, 3);
  const r1 = await rank(address, 1, 3);
  for (const [r, x] of [[2, r2], [1, r1]] as const) {
    const [t, p] = await x.next();
    assert.equal(t, F_INIT);
    const init = decodeMessage<RemoteInit>(p);
    assert.equal(init.rank, r);
    assert.deepEqual(init.comm, { kind: "nccl", uniqueId: ID });
  }
  assert.match(new TextDecoder().decode((await dup.next())[1]), /rank 2 joined twice/);
  // Both joined: the hub stops listening, so a duplicate cannot even connect.
  await assert.rejects(connectWithRetry(address, 500, 1), WorkerError);
  // dispose: forwarded; the hub closes once both answered.
  hub.handle({ cmd: "dispose", seq: 2 });
  for (const x of [r1, r2]) x.sock.write(frame(5, encodeMessage({ seq: 2 })));
  await new Promise((r) => setTimeout(r, 200));
  const ctl = new Int32Array(sh.control), L = controlLayout(3);
  assert.deepEqual([Atomics.load(ctl, L.ack(1)), Atomics.load(ctl, L.ack(2))], [2, 2]);
  for (const x of [r1, r2, dup, wrongSize, outside]) x.sock.destroy();
});

test("tp link: a rank that never comes is answered for with an error after the rendezvous timeout", async () => {
  const address = `127.0.0.1:${await freePort()}`;
  const sh = shared(3);
  new TpHub().handle(setup(address, 3, sh, { timeoutMs: 400 }));
  const r1 = await rank(address, 1, 3);
  assert.equal((await r1.next())[0], F_INIT);
  const ctl = new Int32Array(sh.control), L = controlLayout(3);
  const t0 = Date.now();
  while (Atomics.load(ctl, L.ack(2)) < 1 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
  assert.equal(Atomics.load(ctl, L.ack(2)), 1, "rank 2 answered the init (with an error)");
  assert.equal(Atomics.load(ctl, L.status(2)), 1);
  assert.match(rankError(sh, 3, 2), /rank 2: it did not connect to --tp-master 127\.0\.0\.1:\d+ within 400 ms/);
  assert.equal(Atomics.load(ctl, L.ack(1)), 0, "rank 1 (connected) is not answered for");
  // Rank 1 is told to abort its collectives.
  assert.equal((await r1.next())[0], F_ABORT);
  r1.sock.destroy();
});

test("tp link: the hub combines three ranks' collectives in rank order; a dropped rank aborts rank 0's collective", async () => {
  const address = `127.0.0.1:${await freePort()}`;
  const sh = shared(3);
  const channel = createSocketCommChannel(3, { capacity: 8, timeoutMs: 10_000 });
  new TpHub().handle(setup(address, 3, sh, { channel }));
  const r1 = await rank(address, 1, 3), r2 = await rank(address, 2, 3);
  assert.equal((await r1.next())[0], F_INIT);
  assert.equal((await r2.next())[0], F_INIT);
  const x = [Float32Array.of(0.1, 1e8, 3), Float32Array.of(0.2, 1, 4), Float32Array.of(0.3, -1e8, 5)];
  // Rank 0 is this thread's relay end driven from a worker-free loop: the communicator blocks, so
  // its part is sent from a worker; here ranks 1 and 2 contribute first, then rank 0 joins.
  sendFrame(r1.sock, F_COLL, encodeColl({ op: COLL_ALL_REDUCE, count: 3, root: 0, data: x[1] }));
  sendFrame(r2.sock, F_COLL, encodeColl({ op: COLL_ALL_REDUCE, count: 3, root: 0, data: x[2] }));
  sendFrame(r1.sock, F_COLL, encodeColl({ op: COLL_ALL_GATHER, count: 2, root: 0, data: x[1].subarray(0, 2) }));
  sendFrame(r2.sock, F_COLL, encodeColl({ op: COLL_ALL_GATHER, count: 2, root: 0, data: x[2].subarray(0, 2) }));
  const rank0 = runRank0(channel, x[0]);
  const want = new Float32Array(3).map((_, i) => x[0][i] + x[1][i] + x[2][i]); // double sum, one rounding
  for (const rk of [r1, r2]) {
    const [t, p] = await rk.next();
    assert.equal(t, F_COLL);
    assert.deepEqual(decodeColl(p).data, want);
    assert.deepEqual([...decodeColl((await rk.next())[1]).data], [...x[0].subarray(0, 2), ...x[1].subarray(0, 2), ...x[2].subarray(0, 2)].map(Math.fround));
  }
  const out = await rank0.result;
  assert.deepEqual(out.sum, want);
  // Rank 2 drops while rank 0 waits in its third collective: rank 0 throws, rank 1 is told.
  r2.sock.destroy();
  assert.match(await rank0.third, /the group was aborted .*rank 2: its process disconnected/);
  assert.equal((await r1.next())[0], F_ABORT);
  r1.sock.destroy();
  rank0.worker.terminate();
});

/** Rank 0's SocketCommunicator in a worker: all-reduce, all-gather, then a broadcast that waits. */
function runRank0(channel: ReturnType<typeof createSocketCommChannel>, x: Float32Array) {
  const src = `self.onmessage = async (e) => {
    const { SocketCommunicator } = await import(e.data.module);
    const c = new SocketCommunicator(e.data.channel, 0);
    const sum = new Float32Array(3);
    c.allReduceSum(e.data.x, sum, 3);
    const g = new Float32Array(6);
    c.allGather(e.data.x, g, 2);
    self.postMessage({ sum, g });
    try { c.broadcast(e.data.x, new Float32Array(3), 3, 1); self.postMessage("no error"); } catch (err) { self.postMessage(String(err.message)); }
  };`;
  const worker = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })), { type: "module" });
  const msgs: unknown[] = [];
  const waiters: ((m: unknown) => void)[] = [];
  worker.onmessage = (e: MessageEvent) => {
    const w = waiters.shift();
    if (w) w(e.data);
    else msgs.push(e.data);
  };
  const next = (): Promise<unknown> => msgs.length ? Promise.resolve(msgs.shift()) : new Promise((res) => waiters.push(res));
  worker.postMessage({ module: new URL("../lib/backends/cpu/socket_communicator.ts", import.meta.url).href, channel, x });
  const result = next() as Promise<{ sum: Float32Array; g: Float32Array }>;
  const third = result.then(() => next()) as Promise<string>;
  return { worker, result, third };
}

test("tp link: NCCL abort cells: a watchdog aborts a published communicator once, and then the owner does not destroy it", () => {
  const calls: bigint[] = [];
  const fake = (h: bigint): number => (calls.push(h), 0);
  const cell = createNcclAbortCell();
  assert.equal(abortNcclCell(cell, fake), false, "nothing published yet");
  publish(cell, 0x1234n);
  assert.equal(abortNcclCell(cell, fake), true);
  assert.equal(abortNcclCell(cell, fake), false, "only once");
  assert.deepEqual(calls, [0x1234n]);
  assert.equal(claimNcclCellForDestroy(cell), false, "aborted: the owner's release frees nothing");
  const other = createNcclAbortCell();
  publish(other, 0x99n);
  assert.equal(claimNcclCellForDestroy(other), true, "destroyed first");
  assert.equal(abortNcclCell(other, fake), false, "a destroyed communicator is not aborted");
  assert.throws(() => abortNcclCell(publish(createNcclAbortCell(), 1n), () => 5), /ncclCommAbort/);
});

test("tp link: with NCCL, a rank whose connection drops makes the hub abort rank 0's communicator (ncclCommAbort, faked)", async () => {
  const address = `127.0.0.1:${await freePort()}`;
  const sh = { ...shared(2), ncclCells: [createNcclAbortCell(), createNcclAbortCell()] };
  publish(sh.ncclCells[0], 0xabcn); // rank 0's communicator, as NcclCommunicator.init publishes it
  const aborted: bigint[] = [];
  new TpHub({ ncclAbort: (h) => (aborted.push(h), 0) }).handle(setup(address, 2, sh));
  const r1 = await rank(address, 1, 2);
  assert.equal((await r1.next())[0], F_INIT);
  r1.sock.destroy();
  const t0 = Date.now();
  while (aborted.length === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(aborted, [0xabcn]);
  assert.match(rankError(sh, 2, 1), /rank 1: its process disconnected/);
});

/** What NcclCommunicator.init does with its cell: the handle at byte 8, then the live state. */
function publish(cell: SharedArrayBuffer, handle: bigint): SharedArrayBuffer {
  new BigUint64Array(cell, 8, 1)[0] = handle;
  Atomics.store(new Int32Array(cell, 0, 1), 0, 1);
  return cell;
}
