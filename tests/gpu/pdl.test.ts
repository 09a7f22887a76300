/** GPU: programmatic dependent launch (LaunchOptions.pdl) eagerly and captured into a CUDA graph. */
import { assert } from "../harness.ts";
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { device, gpuProbe, gpuTest } from "./gpu.ts";
import { test } from "../harness.ts";

const hopper = gpuProbe.ok && device().supportsPdl;
const pdlTest = hopper ? gpuTest : test.skipIf(gpuProbe.ok ? "no programmatic dependent launch on this GPU (needs compute capability 9.0+)" : "no GPU", true);

pdlTest("a chain of PDL launches that wait in code keeps every update, eagerly and as graph edges", () => {
  const d = device();
  using mod = loadKernelFile(d, "runtime_test.cu");
  const add = mod.kernel("llmrt_pdl_add_one", ["ptr", "u32", "i64"]);
  const nowait = mod.kernel("llmrt_pdl_nowait", ["ptr", "u32", "i64"]);
  const n = 132 * 256;
  const spin = 20_000n; // ~10 µs per launch between its read and its write
  using y = d.alloc(n * 4);
  using stream = d.createStream();
  const read = (): Float32Array => {
    stream.synchronize();
    const h = new Float32Array(n);
    y.copyToHost(h);
    return h;
  };
  y.fill(0, { stream });
  for (let i = 0; i < 50; i++) add.launch(n / 256, 256, [y, n, spin], { stream, pdl: true });
  let h = read();
  assert.ok(h.every((v) => v === 50), `eager: expected 50 everywhere, got min ${Math.min(...h)}`);
  y.fill(0, { stream });
  using graph = stream.capture((s) => {
    for (let i = 0; i < 50; i++) add.launch(n / 256, 256, [y, n, spin], { stream: s, pdl: true });
  });
  assert.equal(graph.numNodes, 50);
  for (let r = 0; r < 3; r++) graph.launch(stream);
  h = read();
  assert.ok(h.every((v) => v === 150), `graph: expected 150 everywhere, got min ${Math.min(...h)}`);
  // The control: launches that never wait overlap their predecessor under PDL (lost updates are
  // expected, not required: it shows the attribute took effect on this GPU).
  y.fill(0, { stream });
  for (let i = 0; i < 50; i++) nowait.launch(n / 256, 256, [y, n, spin], { stream, pdl: true });
  h = read();
  console.log(`PDL control (no wait): min ${Math.min(...h)} of 50 updates kept (below 50: the launches overlapped)`);
});

gpuTest("pdl: false launches are ordinary stream-ordered launches", () => {
  const d = device();
  using mod = loadKernelFile(d, "runtime_test.cu");
  const nowait = mod.kernel("llmrt_pdl_nowait", ["ptr", "u32", "i64"]);
  const n = 4096;
  using y = d.alloc(n * 4);
  using stream = d.createStream();
  y.fill(0, { stream });
  for (let i = 0; i < 20; i++) nowait.launch(n / 256, 256, [y, n, 2000n], { stream, pdl: false });
  stream.synchronize();
  const h = new Float32Array(n);
  y.copyToHost(h);
  assert.ok(h.every((v) => v === 20), `expected 20 everywhere, got min ${Math.min(...h)}`);
});
