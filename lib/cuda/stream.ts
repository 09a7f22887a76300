/**
 * `Stream` (an ordered queue of device work, and the handle of CUDA graph capture) and `Event`
 * (a marker in a stream: ordering between streams and GPU-side timing).
 */
import { checkCu } from "../../ffi/check.ts";
import { CU, cuda } from "../../ffi/cuda.ts";
import { CudaError } from "../../ffi/errors.ts";
import { out } from "../../ffi/runtime.ts";
import type { CudaDevice } from "./device.ts";
import { bindContext } from "./driver.ts";
import { CudaGraph } from "./graph.ts";
import { NativeOwner } from "./owner.ts";

/** Options of `device.createStream`. */
export interface StreamOptions {
  /** Do not synchronize with the legacy default stream (needed for clean graph capture). @default true */
  readonly nonBlocking?: boolean;
}

/** How strictly capture forbids unsafe CUDA calls elsewhere (`CUstreamCaptureMode`). */
export type CaptureMode = "global" | "thread_local" | "relaxed";

const CAPTURE_MODE: Readonly<Record<CaptureMode, number>> = {
  global: CU.STREAM_CAPTURE_MODE_GLOBAL,
  thread_local: CU.STREAM_CAPTURE_MODE_THREAD_LOCAL,
  relaxed: CU.STREAM_CAPTURE_MODE_RELAXED,
};

/** Maps a query result to done / not done, throwing on real errors. */
function queryDone(code: number, api: string): boolean {
  if (code === CU.ERROR_NOT_READY) return false;
  checkCu(code, api);
  return true;
}

/**
 * A CUDA stream. Work enqueued on one stream runs in order; `capture()` records it into a
 * `CudaGraph` instead of running it.
 *
 * @example
 * ```ts
 * using stream = device.createStream();
 * kernel.launch(grid, block, [buf, n], { stream });
 * stream.synchronize();
 * ```
 */
export class Stream extends NativeOwner {
  readonly device: CudaDevice;
  readonly #handle: bigint;
  readonly #ctx: bigint;

  /** Use `device.createStream()`. */
  constructor(device: CudaDevice, options: StreamOptions = {}) {
    super("Stream");
    device.bind();
    const cell = new BigUint64Array(1);
    const flags = options.nonBlocking === false ? CU.STREAM_DEFAULT : CU.STREAM_NON_BLOCKING;
    checkCu(cuda().cuStreamCreate(cell, flags), "cuStreamCreate");
    const handle = cell[0];
    const ctx = device.context;
    this.device = device;
    this.#handle = handle;
    this.#ctx = ctx;
    this.own(device.adopt("Stream", () => {
      bindContext(ctx);
      checkCu(cuda().cuStreamDestroy_v2(handle), "cuStreamDestroy");
    }));
  }

  /** The CUstream handle. */
  get handle(): bigint {
    this.assertLive();
    return this.#handle;
  }

  /** Blocks until all work on the stream is done. */
  synchronize(): void {
    checkCu(cuda().cuStreamSynchronize(this.handle), "cuStreamSynchronize");
  }

  /** True when all work on the stream is done (does not block). */
  isDone(): boolean {
    return queryDone(cuda().cuStreamQuery(this.handle), "cuStreamQuery");
  }

  /** Makes later work on this stream wait for `event`. */
  waitEvent(event: Event): void {
    checkCu(cuda().cuStreamWaitEvent(this.handle, event.handle, 0), "cuStreamWaitEvent");
  }

  /** Starts recording this stream's work into a graph (nothing runs until the graph is launched). */
  beginCapture(mode: CaptureMode = "thread_local"): void {
    bindContext(this.#ctx);
    checkCu(cuda().cuStreamBeginCapture_v2(this.handle, CAPTURE_MODE[mode]), "cuStreamBeginCapture");
  }

  /** Ends capture and instantiates the recorded work as a `CudaGraph` owned by the device. */
  endCapture(): CudaGraph {
    const cell = new BigUint64Array(1);
    checkCu(cuda().cuStreamEndCapture(this.handle, cell), "cuStreamEndCapture");
    return new CudaGraph(this.device, cell[0]);
  }

  /** True while this stream is capturing. */
  get isCapturing(): boolean {
    checkCu(cuda().cuStreamIsCapturing(this.handle, out.i32), "cuStreamIsCapturing");
    return out.i32[0] !== CU.STREAM_CAPTURE_STATUS_NONE;
  }

  /**
   * Captures what `record` enqueues on this stream into a graph. If `record` throws, capture is
   * ended, the partial graph freed, and the error rethrown.
   */
  capture(record: (stream: Stream) => void, mode: CaptureMode = "thread_local"): CudaGraph {
    this.beginCapture(mode);
    try {
      record(this);
    } catch (e) {
      const cell = new BigUint64Array(1);
      const code = cuda().cuStreamEndCapture(this.handle, cell);
      if (code === 0 && cell[0] !== 0n) cuda().cuGraphDestroy(cell[0]);
      throw e;
    }
    return this.endCapture();
  }
}

/** Options of `device.createEvent`. */
export interface EventOptions {
  /** Record timestamps (for `elapsedSince`); off makes record/wait cheaper. @default true */
  readonly timing?: boolean;
  /** `synchronize()` sleeps instead of spinning. @default false */
  readonly blockingSync?: boolean;
}

/**
 * A CUDA event: a marker recorded into a stream, for cross-stream ordering and GPU timing.
 *
 * @example
 * ```ts
 * const start = device.createEvent(), end = device.createEvent();
 * start.record(stream); work(); end.record(stream); end.synchronize();
 * console.log(end.elapsedSince(start), "ms");
 * ```
 */
export class Event extends NativeOwner {
  readonly device: CudaDevice;
  readonly #handle: bigint;

  /** Use `device.createEvent()`. */
  constructor(device: CudaDevice, options: EventOptions = {}) {
    super("Event");
    device.bind();
    const cell = new BigUint64Array(1);
    const flags = (options.timing === false ? CU.EVENT_DISABLE_TIMING : 0) | (options.blockingSync ? CU.EVENT_BLOCKING_SYNC : 0);
    checkCu(cuda().cuEventCreate(cell, flags), "cuEventCreate");
    const handle = cell[0];
    const ctx = device.context;
    this.device = device;
    this.#handle = handle;
    this.own(device.adopt("Event", () => {
      bindContext(ctx);
      checkCu(cuda().cuEventDestroy_v2(handle), "cuEventDestroy");
    }));
  }

  /** The CUevent handle. */
  get handle(): bigint {
    this.assertLive();
    return this.#handle;
  }

  /** Records the event at the current end of `stream` (the legacy default stream if none). */
  record(stream?: Stream | null): void {
    checkCu(cuda().cuEventRecord(this.handle, stream ? stream.handle : 0n), "cuEventRecord");
  }

  /** Blocks until the recorded work is done. */
  synchronize(): void {
    checkCu(cuda().cuEventSynchronize(this.handle), "cuEventSynchronize");
  }

  /** True when the recorded work is done. */
  isDone(): boolean {
    return queryDone(cuda().cuEventQuery(this.handle), "cuEventQuery");
  }

  /** Milliseconds of GPU time from `start` to this event (both recorded, both done). */
  elapsedSince(start: Event): number {
    const lib = cuda();
    const fn = lib.cuEventElapsedTime_v2 ?? lib.cuEventElapsedTime;
    if (!fn) throw new CudaError("cuda", "cuEventElapsedTime", -1, "SYMBOL_MISSING", "the driver exports neither cuEventElapsedTime_v2 nor cuEventElapsedTime");
    checkCu(fn(out.f32, start.handle, this.handle), "cuEventElapsedTime");
    return out.f32[0];
  }
}
