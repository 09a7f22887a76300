/**
 * NCCL through FFI on one GPU (issue 17's device check), and the Worker-per-rank path of a one-rank
 * engine against the plain single-GPU session: same greedy ids, logits within 1e-5 (float32), and
 * decode tokens/s of both printed side by side. Skipped with the reason where there is no GPU or
 * no libnccl.
 */
import { assert, test } from "../harness.ts";
import { Session } from "../../mod.ts";
import { shardEngine } from "../../lib/builder/sharding.ts";
import { NcclCommunicator, ncclUniqueId, ncclVersion } from "../../lib/cuda/nccl.ts";
import type { TpSession } from "../../lib/runtime/tp_session.ts";
import { device, gpuProbe, greedyDecode, kjvCudaEngine, ncclTestGate, noGpuReason, seededUniform } from "./gpu.ts";

const ncclTest = ncclTestGate();
const gpuOnly = test.skipIf(noGpuReason, !gpuProbe.ok);

ncclTest("nccl: one rank initialises; all-reduce, all-gather and broadcast move the data, also inside a CUDA graph", () => {
  const dev = device();
  const v = ncclVersion();
  console.log(`NCCL ${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}`);
  assert.ok(v >= 21800, `NCCL version ${v}`);
  using stream = dev.createStream();
  const comm = NcclCommunicator.init(dev, stream, { uniqueId: ncclUniqueId(), rank: 0, worldSize: 1, dtype: "float32" });
  const n = 1 << 16;
  const x = seededUniform(7, n);
  using a = dev.alloc(n * 4);
  using b = dev.alloc(n * 4);
  a.copyFromHost(x);
  const back = new Float32Array(n);
  for (
    const [name, run] of [
      ["allReduceSum", () => comm.allReduceSum(a.ptr, b.ptr, n)],
      ["allGather", () => comm.allGather(a.ptr, b.ptr, n)],
      ["broadcast", () => comm.broadcast(a.ptr, b.ptr, n, 0)],
    ] as const
  ) {
    b.fill(0, { stream });
    run();
    stream.synchronize();
    b.copyToHost(back);
    assert.deepEqual(back, x, `${name} with one rank copies send to recv`);
  }
  // Captured into a graph with the work around it, as the decode graphs will hold it.
  b.fill(0, { stream });
  stream.synchronize();
  using graph = stream.capture(() => comm.allReduceSum(a.ptr, b.ptr, n));
  graph.launch(stream);
  stream.synchronize();
  b.copyToHost(back);
  assert.deepEqual(back, x, "all-reduce replayed from a CUDA graph");
  assert.equal(comm.asyncError(), null);
  comm.dispose();
  comm.dispose();
  assert.ok(comm.isDisposed);
});

gpuOnly("tp: a one-rank engine through the Worker-per-rank path matches the single-GPU session (ids, logits, tokens/s)", () => {
  const engine = kjvCudaEngine("float32");
  const V = engine.plan.attributes.vocabSize;
  const prompt = [0, 403, 407, 261, 378, 55, 66, 77];
  const N = 128;
  const direct = Session.fromSerializedEngine(engine, { backend: "cuda" });
  const d = greedyDecode(direct, prompt, N, V);
  direct.dispose();
  const workers = Session.fromSerializedEngine(engine, { backend: "cuda", rankWorkers: true });
  assert.equal((workers.impl as TpSession).worldSize, 1);
  const w = greedyDecode(workers, prompt, N, V);
  workers.dispose();
  engine.dispose();
  let worst = 0;
  for (let k = 0; k < N; k++) for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(d.logits[k][i] - w.logits[k][i]));
  console.log(
    `kjv-llama f32 on ${gpuProbe.ok ? "CUDA" : "?"}: decode ${d.tokensPerS.toFixed(1)} tok/s direct vs ${
      w.tokensPerS.toFixed(1)
    } tok/s through the rank worker; max |logit diff| ${worst}`,
  );
  assert.deepEqual(w.ids, d.ids);
  assert.ok(worst <= 1e-5, `logits differ by ${worst}`);
  // A pathological worker path (a sync or a copy of the weights a step) runs at a small fraction of the direct session; alone
  // on the H200 the ratio is 0.67-0.83, but a kjv-llama step is ~0.4 ms of mostly host time, and with two other suite
  // processes on the GPU it measured 0.49 once (session 19): the bound leaves room for that.
  assert.ok(w.tokensPerS > 0.3 * d.tokensPerS, `worker path ${w.tokensPerS.toFixed(1)} tok/s vs direct ${d.tokensPerS.toFixed(1)}`);
}, 300_000);

ncclTest("tp: a one-rank sharded CUDA engine (every all_reduce an NCCL call captured in the decode graphs) matches the unsharded engine", () => {
  for (const dtype of ["float32", "bfloat16"] as const) {
    const plain = kjvCudaEngine(dtype);
    const sharded = shardEngine(kjvCudaEngine(dtype), 1);
    assert.equal(sharded.plan.ops.filter((o) => o.type === "all_reduce").length, 2 * plain.config.model.numHiddenLayers);
    assert.equal(sharded.config.mapping!.lmHead, "replicated");
    const V = plain.plan.attributes.vocabSize;
    const prompt = [0, 403, 407, 261, 378, 55, 66, 77];
    const N = 96;
    const direct = Session.fromSerializedEngine(plain, { backend: "cuda" });
    const d = greedyDecode(direct, prompt, N, V);
    direct.dispose();
    const tp = Session.fromSerializedEngine(sharded, { backend: "cuda", rankWorkers: true });
    const w = greedyDecode(tp, prompt, N, V);
    tp.dispose();
    plain.dispose();
    sharded.dispose();
    let worst = 0;
    for (let k = 0; k < N; k++) for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(d.logits[k][i] - w.logits[k][i]));
    console.log(
      `kjv-llama ${dtype} sharded TP=1 (NCCL all_reduce in graphs): ${w.tokensPerS.toFixed(1)} tok/s vs unsharded ${
        d.tokensPerS.toFixed(1)
      }; max |logit diff| ${worst}`,
    );
    if (dtype === "float32") {
      assert.deepEqual(w.ids, d.ids, `${dtype} greedy ids`);
      assert.ok(worst <= 1e-5, `${dtype} logits differ by ${worst}`);
    } else {
      // bf16: a sharded plan fuses less (the o_proj/down residual adds wait for the all_reduce): other rounding, bf16 tolerance.
      let num = 0, den = 0;
      for (let i = 0; i < V; i++) (num += (d.logits[0][i] - w.logits[0][i]) ** 2), (den += d.logits[0][i] ** 2);
      const same = w.ids.findIndex((t, k) => t !== d.ids[k]);
      console.log(`  bf16: prefill logits rel L2 ${Math.sqrt(num / den).toExponential(2)}; greedy ids equal for ${same < 0 ? N : same} of ${N}`);
      assert.ok(Math.sqrt(num / den) < 2e-2, "bf16 prefill logits within bf16 tolerance");
      assert.deepEqual(w.ids.slice(0, 8), d.ids.slice(0, 8), "bf16 first greedy ids");
    }
  }
}, 300_000);
