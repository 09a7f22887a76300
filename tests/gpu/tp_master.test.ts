/**
 * The `--tp-master` bootstrap on one GPU (issue 17 item 4's device check): a one-rank sharded
 * engine (every all_reduce an NCCL call) through a session with `tpMaster` — rank 0's hub listens,
 * rank 0 makes the NCCL unique id and initialises NCCL with world size 1 — matches the single-GPU
 * session of the unsharded engine (greedy ids, logits within 1e-5, float32). And the NCCL abort
 * cell with the real library: a watchdog's ncclCommAbort frees the communicator once and the
 * owner's dispose does not destroy it again. Skipped with the reason without a GPU or libnccl.
 */
import { assert } from "../harness.ts";
import { Session } from "../../mod.ts";
import { shardEngine } from "../../lib/builder/sharding.ts";
import { abortNcclCell, createNcclAbortCell, NcclCommunicator, ncclUniqueId } from "../../lib/cuda/nccl.ts";
import type { TpSession } from "../../lib/runtime/tp_session.ts";
import { device, greedyDecode, kjvCudaEngine, ncclTestGate, seededUniform } from "./gpu.ts";

const ncclTest = ncclTestGate();

ncclTest("tp-master: NCCL initialises through the --tp-master path with one rank; the engine matches the single-GPU session", () => {
  const plain = kjvCudaEngine("float32");
  const sharded = shardEngine(kjvCudaEngine("float32"), 1);
  const V = plain.plan.attributes.vocabSize;
  const prompt = [0, 403, 407, 261, 378, 55, 66, 77];
  const N = 96;
  const direct = Session.fromSerializedEngine(plain, { backend: "cuda" });
  const d = greedyDecode(direct, prompt, N, V);
  direct.dispose();
  const t0 = performance.now();
  const viaMaster = Session.fromSerializedEngine(sharded, { backend: "cuda", tpMaster: "127.0.0.1:0", rendezvousTimeoutMs: 30_000 });
  const startMs = performance.now() - t0;
  assert.equal((viaMaster.impl as TpSession).worldSize, 1);
  const w = greedyDecode(viaMaster, prompt, N, V);
  viaMaster.dispose();
  plain.dispose();
  sharded.dispose();
  let worst = 0;
  for (let k = 0; k < N; k++) for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(d.logits[k][i] - w.logits[k][i]));
  console.log(
    `kjv-llama f32, one-rank sharded engine via --tp-master (hub + NCCL world size 1, session up in ${startMs.toFixed(0)} ms): ${
      w.tokensPerS.toFixed(1)
    } tok/s vs single-GPU session ${d.tokensPerS.toFixed(1)} tok/s; max |logit diff| ${worst}`,
  );
  assert.deepEqual(w.ids, d.ids);
  assert.ok(worst <= 1e-5, `logits differ by ${worst}`);
}, 300_000);

ncclTest("tp-master: an NCCL abort cell aborts the real communicator once; its owner's dispose does not destroy it again", () => {
  const dev = device();
  using stream = dev.createStream();
  const cell = createNcclAbortCell();
  const comm = NcclCommunicator.init(dev, stream, { uniqueId: ncclUniqueId(), rank: 0, worldSize: 1, dtype: "float32", abortCell: cell });
  const n = 4096, x = seededUniform(3, n), back = new Float32Array(n);
  using a = dev.alloc(n * 4);
  using b = dev.alloc(n * 4);
  a.copyFromHost(x);
  comm.allReduceSum(a.ptr, b.ptr, n);
  stream.synchronize();
  b.copyToHost(back);
  assert.deepEqual(back, x);
  assert.equal(abortNcclCell(cell), true, "the watchdog's ncclCommAbort");
  assert.equal(abortNcclCell(cell), false, "only once");
  comm.dispose(); // must not ncclCommDestroy the aborted handle
  assert.ok(comm.isDisposed);
  // The device is still usable afterwards.
  b.fill(0, { stream });
  stream.synchronize();
});
