/**
 * `CudaGraph`: work captured from a stream, instantiated once and replayed with one launch.
 * The decode step of the engine is one of these per batch-size bucket.
 */
import { checkCu, noteCleanupFailures } from "../../ffi/check.ts";
import { cuda } from "../../ffi/cuda.ts";
import type { CudaDevice } from "./device.ts";
import { bindContext } from "./driver.ts";
import { NativeOwner } from "./owner.ts";
import type { Stream } from "./stream.ts";

/**
 * A captured and instantiated CUDA graph (CUgraph + CUgraphExec), owned by its device.
 *
 * @example
 * ```ts
 * using graph = stream.capture((s) => { for (const k of steps) k.launch(grid, block, args, { stream: s }); });
 * graph.launch(stream);   // replays every captured launch
 * stream.synchronize();
 * ```
 */
export class CudaGraph extends NativeOwner {
  readonly device: CudaDevice;
  readonly #graph: bigint;
  readonly #exec: bigint;

  /** Use `stream.capture()` / `stream.endCapture()`; takes ownership of `graph`. */
  constructor(device: CudaDevice, graph: bigint) {
    super("CudaGraph");
    const lib = cuda();
    const cell = new BigUint64Array(1);
    const code = lib.cuGraphInstantiateWithFlags(cell, graph, 0);
    if (code !== 0) {
      const destroyed = lib.cuGraphDestroy(graph);
      try {
        checkCu(code, "cuGraphInstantiateWithFlags");
      } catch (e) {
        noteCleanupFailures(e, [["cuda", "cuGraphDestroy", destroyed]]);
        throw e;
      }
    }
    const exec = cell[0];
    const ctx = device.context;
    this.device = device;
    this.#graph = graph;
    this.#exec = exec;
    this.own(device.adopt("CudaGraph", () => {
      bindContext(ctx);
      const a = cuda().cuGraphExecDestroy(exec);
      const b = cuda().cuGraphDestroy(graph);
      checkCu(a, "cuGraphExecDestroy");
      checkCu(b, "cuGraphDestroy");
    }));
  }

  /** Number of nodes (kernels, copies, memsets) in the graph. */
  get numNodes(): number {
    this.assertLive();
    const n = new BigUint64Array(1);
    checkCu(cuda().cuGraphGetNodes(this.#graph, null, n), "cuGraphGetNodes");
    return Number(n[0]);
  }

  /** Replays the graph on `stream`. */
  launch(stream: Stream): void {
    this.assertLive();
    checkCu(cuda().cuGraphLaunch(this.#exec, stream.handle), "cuGraphLaunch");
  }

  /** Uploads the graph's resources ahead of the first launch (optional, hides first-launch cost). */
  upload(stream: Stream): void {
    this.assertLive();
    checkCu(cuda().cuGraphUpload(this.#exec, stream.handle), "cuGraphUpload");
  }
}
