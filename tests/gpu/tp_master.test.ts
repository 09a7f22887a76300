/**
 * The `--tp-master` bootstrap on one GPU (issue 17 item 4's device check): a one-rank sharded
 * engine (every all_reduce an NCCL call) through a session with `tpMaster` — rank 0's hub listens,
 * rank 0 makes the NCCL unique id and initialises NCCL with world size 1 — matches the single-GPU
 * session of the unsharded engine (greedy ids, logits within 1e-5, float32). And the NCCL abort
 * cell with the real library: a watchdog's ncclCommAbort frees the communicator once and the
 * owner's dispose does not destroy it again. Skipped with the reason without a GPU or libnccl.
 */
import { assert, test } from "../harness.ts";
import { AutoModelForCausalLM, buildSync, Session } from "../../mod.ts";
import type { Engine } from "../../lib/builder/engine.ts";
import { shardEngine } from "../../lib/builder/sharding.ts";
import { abortNcclCell, createNcclAbortCell, NcclCommunicator, ncclUniqueId, ncclVersion } from "../../lib/cuda/nccl.ts";
import type { TpSession } from "../../lib/runtime/tp_session.ts";
import { device, gpuProbe, noGpuReason, seededUniform, step } from "./gpu.ts";

let ncclReason = "";
if (gpuProbe.ok) {
  try {
    ncclVersion();
  } catch (e) {
    ncclReason = `no NCCL: ${(e as Error).message.split("\n")[0]}`;
  }
}
const ncclTest = test.skipIf(noGpuReason || ncclReason, !gpuProbe.ok || ncclReason !== "");
const KJV = new URL("../../models/kjv-llama/", import.meta.url).pathname;

function greedy(s: Session, prompt: number[], n: number, vocab: number): { ids: number[]; logits: Float32Array[]; tokensPerS: number } {
  using kv = s.createKvCache(Math.ceil((prompt.length + n) / s.tokensPerBlock) + 1);
  const blocks = Array.from({ length: Math.ceil((prompt.length + n) / s.tokensPerBlock) }, (_, i) => i);
  const out = { sampledIds: new Int32Array(1), logits: new Float32Array(vocab) };
  s.run(step(prompt, 0, blocks), out, kv);
  const ids = [out.sampledIds[0]], logits = [out.logits.slice()];
  let t0 = 0;
  for (let i = 1; i < n; i++) {
    if (i === 4) t0 = performance.now();
    s.run(step([ids[i - 1]], prompt.length + i - 1, blocks), out, kv);
    ids.push(out.sampledIds[0]);
    logits.push(out.logits.slice());
  }
  return { ids, logits, tokensPerS: (n - 4) / ((performance.now() - t0) / 1000) };
}

ncclTest("tp-master: NCCL initialises through the --tp-master path with one rank; the engine matches the single-GPU session", () => {
  const open = (): Engine => {
    const model = AutoModelForCausalLM.fromHuggingFace(KJV);
    try {
      return buildSync(model, { backend: "cuda", dtype: "float32", maxBatchSize: 4, maxNumTokens: 256, maxSeqLen: 256 });
    } finally {
      model.close();
    }
  };
  const plain = open();
  const sharded = shardEngine(open(), 1);
  const V = plain.plan.attributes.vocabSize;
  const prompt = [0, 403, 407, 261, 378, 55, 66, 77];
  const N = 96;
  const direct = Session.fromSerializedEngine(plain, { backend: "cuda" });
  const d = greedy(direct, prompt, N, V);
  direct.dispose();
  const t0 = performance.now();
  const viaMaster = Session.fromSerializedEngine(sharded, { backend: "cuda", tpMaster: "127.0.0.1:0", rendezvousTimeoutMs: 30_000 });
  const startMs = performance.now() - t0;
  assert.equal((viaMaster.impl as TpSession).worldSize, 1);
  const w = greedy(viaMaster, prompt, N, V);
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
