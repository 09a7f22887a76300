/** GPU: stream capture into a CUDA graph, replay, and the graph's lifetime. */
import { assert } from "../harness.ts";
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { device, gpuTest } from "./gpu.ts";

gpuTest("capture 100 kernel launches, replay the graph 3 times", () => {
  const d = device();
  using mod = loadKernelFile(d, "runtime_test.cu");
  const addOne = mod.kernel("llmrt_add_one", ["ptr", "u32"]);
  const n = 4097;
  using y = d.alloc(n * 4);
  using stream = d.createStream();
  y.fill(0, { stream });
  using graph = stream.capture((s) => {
    for (let i = 0; i < 100; i++) addOne.launch(Math.ceil(n / 128), 128, [y, n], { stream: s });
  });
  assert.equal(graph.numNodes, 100);
  stream.synchronize();
  const before = new Float32Array(n);
  y.copyToHost(before);
  assert.ok(before.every((v) => v === 0), "capture must not run the kernels");
  graph.upload(stream);
  for (let r = 0; r < 3; r++) graph.launch(stream);
  stream.synchronize();
  const after = new Float32Array(n);
  y.copyToHost(after);
  assert.ok(after.every((v) => v === 300), `expected 300 everywhere, got ${after[0]} .. ${after[n - 1]}`);
  graph.dispose();
  graph.dispose();
  assert.ok(graph.isDisposed);
  assert.throws(() => graph.launch(stream), /disposed/);
});

gpuTest("a capture whose recorder throws ends cleanly and the stream stays usable", () => {
  const d = device();
  using mod = loadKernelFile(d, "runtime_test.cu");
  const addOne = mod.kernel("llmrt_add_one", ["ptr", "u32"]);
  using y = d.alloc(1024);
  using stream = d.createStream();
  const children = d.numChildren;
  assert.throws(() =>
    stream.capture((s) => {
      addOne.launch(1, 256, [y, 256], { stream: s });
      throw new Error("recorder failed");
    }), /recorder failed/);
  assert.equal(stream.isCapturing, false);
  assert.equal(d.numChildren, children);
  y.fill(0, { stream });
  addOne.launch(1, 256, [y, 256], { stream });
  stream.synchronize();
  const got = new Float32Array(256);
  y.copyToHost(got);
  assert.ok(got.every((v) => v === 1));
});
