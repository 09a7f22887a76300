/**
 * The TCP rendezvous of tensor-parallel ranks (`--tp-master host:port`), on 127.0.0.1 only: rank 0
 * hands its 128-byte NCCL id to every other rank, ranks that come early retry, wrong group sizes
 * and duplicate ranks are refused, and nobody waits forever.
 */
import * as net from "node:net";
import { assert, test } from "./harness.ts";
import { joinRendezvous, parseMaster, RendezvousServer } from "../lib/runtime/tp_rendezvous.ts";
import { ValidationError, WorkerError } from "../lib/util/errors.ts";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const ID = Uint8Array.from({ length: 128 }, (_, i) => (i * 37 + 11) & 255);

test("rendezvous: rank 0 hands the id to ranks 1 and 2; a rank that comes before rank 0 listens retries", async () => {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const early = joinRendezvous(address, 2, 3, 10_000); // rank 0 is not up yet
  await new Promise((r) => setTimeout(r, 300));
  const server = await RendezvousServer.listen(address, 3, ID);
  try {
    const [a, b] = await Promise.all([joinRendezvous(address, 1, 3, 10_000), early]);
    assert.deepEqual(a, ID);
    assert.deepEqual(b, ID);
    await server.served(5_000);
  } finally {
    server.close();
  }
});

test("rendezvous: a wrong group size and a duplicate rank are refused; a missing rank times out naming it", async () => {
  const server = await RendezvousServer.listen("127.0.0.1:0", 3, ID);
  const address = `127.0.0.1:${server.port}`;
  try {
    await assert.rejects(
      joinRendezvous(address, 1, 4, 5_000),
      (e: unknown) => e instanceof ValidationError && /expects 4 ranks; rank 0 serves a group of 3/.test(e.message),
    );
    assert.deepEqual(await joinRendezvous(address, 1, 3, 5_000), ID);
    await assert.rejects(joinRendezvous(address, 1, 3, 5_000), /rank 1 joined twice/);
    await assert.rejects(server.served(300), (e: unknown) => e instanceof WorkerError && /1 of 2 ranks arrived .* \(missing: 2\)/.test(e.message));
  } finally {
    server.close();
  }
});

test("rendezvous: a rank whose rank 0 never comes gives up with a WorkerError; bad addresses are named", async () => {
  const port = await freePort();
  const t0 = Date.now();
  await assert.rejects(joinRendezvous(`127.0.0.1:${port}`, 1, 2, 700), (e: unknown) => e instanceof WorkerError && /could not reach rank 0/.test(e.message));
  assert.ok(Date.now() - t0 < 5_000);
  assert.deepEqual(parseMaster("[::1]:29500"), { host: "::1", port: 29500 });
  assert.throws(() => parseMaster("localhost"), /--tp-master: expected host:port/);
  assert.throws(() => parseMaster("h:70000"), /--tp-master/);
});
