/**
 * Entry of one tensor-parallel rank's Web Worker. It imports nothing at load: it marks itself
 * booted, then loads the rank runner (tp_rank.ts) inside a try, so even a module that fails to
 * load is reported to the session as this rank's error instead of leaving it waiting.
 */
// Plain JavaScript with no static imports: Deno type-checks a worker's static graph each time one
// starts (seconds per rank); the rank code is checked with the library instead (deno check).
const ctx = globalThis;

/** @type {{ handle(msg: unknown): void } | null} */
let runner = null;
/** @type {Promise<void> | null} */
let loading = null;
/** @type {unknown[]} */
const queue = [];

/** Writes the failure to load into the session's shared memory (see tp_wire.ts) for rank `msg.rank` (the hub: its ranks). */
function reportBootFailure(msg, e) {
  if (!msg.shared || msg.worldSize === undefined) return;
  if (msg.cmd === "hub") {
    for (const r of msg.ranks) reportRankFailure(msg, r, msg.init.initSeq, e);
  } else if (msg.rank !== undefined && msg.seq !== undefined) {
    reportRankFailure(msg, msg.rank, msg.seq, e);
  }
}

function reportRankFailure(msg, r, seq, e) {
  const N = msg.worldSize;
  const ctl = new Int32Array(msg.shared.control);
  const text = JSON.stringify({
    kind: "worker",
    name: "WorkerError",
    message: `tensor-parallel rank ${r}: its worker could not load: ${e instanceof Error ? e.message : String(e)}`,
  });
  const bytes = new TextEncoder().encode(text).subarray(0, 16384);
  new Uint8Array(msg.shared.errors, r * 16384, 16384).set(bytes);
  Atomics.store(ctl, 2 * N + r, bytes.length);
  Atomics.store(ctl, N + r, 1);
  Atomics.store(ctl, r, seq);
  Atomics.notify(ctl, r);
}

ctx.onmessage = (e) => {
  if (runner) {
    runner.handle(e.data);
    return;
  }
  queue.push(e.data);
  if (loading) return;
  const first = e.data;
  if (first.shared && first.worldSize !== undefined && first.cmd !== "hub") {
    const ctl = new Int32Array(first.shared.control);
    Atomics.add(ctl, 3 * first.worldSize, 1);
    Atomics.notify(ctl, 3 * first.worldSize);
  }
  // The rank module's URL comes in the init message: a specifier written here would be a static
  // dependency that Deno type-checks in every worker it starts (seconds per rank).
  loading = import(first.rankModule).then(
    (m) => {
      runner = new m[first.entry ?? "RankRunner"]();
      for (const msg of queue.splice(0)) runner.handle(msg);
    },
    (err) => {
      for (const msg of queue.splice(0)) reportBootFailure(msg, err);
    },
  );
};
