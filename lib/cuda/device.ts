/**
 * `CudaDevice`: one GPU through its primary context, and the parent of every native resource made
 * on it (device and pinned memory, streams, events, modules, graphs, GEMM handles).
 */
import { checkCu } from "../../ffi/check.ts";
import { CU, cuda } from "../../ffi/cuda.ts";
import { NativeLibraryError } from "../../ffi/errors.ts";
import { out } from "../../ffi/runtime.ts";
import { ValidationError } from "../util/errors.ts";
import { bindContext, deviceCount, driverVersion, ensureCudaInit, forgetContext, launchKernelExAddress } from "./driver.ts";
import { DeviceBuffer, PinnedHostBuffer } from "./memory.ts";
import { CudaModule } from "./module.ts";
import { NativeOwner, Release, ReleaseSet } from "./owner.ts";
import { Event, type EventOptions, Stream, type StreamOptions } from "./stream.ts";

/** Compute capability, e.g. `{ major: 9, minor: 0 }` on H100/H200. */
export interface ComputeCapability {
  readonly major: number;
  readonly minor: number;
}

/** Free and total device memory in bytes (`cuMemGetInfo`). */
export interface MemoryInfo {
  readonly free: number;
  readonly total: number;
}

/** Result of `CudaDevice.probe()`: whether a usable GPU is present, and why not. */
export type GpuProbe =
  | { readonly ok: true; readonly count: number; readonly driverVersion: number }
  | { readonly ok: false; readonly reason: string };

function attribute(attrib: number, dev: number): number {
  checkCu(cuda().cuDeviceGetAttribute(out.i32, attrib, dev), "cuDeviceGetAttribute", `attribute ${attrib}`);
  return out.i32[0];
}

/** An attribute newer drivers may drop (clock rates): 0 when the driver refuses it. */
function optionalAttribute(attrib: number, dev: number): number {
  return cuda().cuDeviceGetAttribute(out.i32, attrib, dev) === 0 ? out.i32[0] : 0;
}

/**
 * One CUDA device, opened through its primary context. It owns what is created on it: disposing
 * the device first disposes every buffer, stream, event, module and graph still alive.
 *
 * @example
 * ```ts
 * using device = CudaDevice.open(0);
 * console.log(device.name, device.arch, device.smCount, device.totalMemory);
 * using buf = device.alloc(1 << 20);
 * buf.copyFromHost(new Float32Array(1 << 18).fill(1));
 * ```
 */
export class CudaDevice extends NativeOwner {
  readonly ordinal: number;
  /** Marketing name, e.g. "NVIDIA H100 80GB HBM3". */
  readonly name: string;
  readonly computeCapability: ComputeCapability;
  /** NVRTC/CUBIN architecture of exactly this device, e.g. "sm_90". */
  readonly arch: string;
  readonly smCount: number;
  /** Total device memory in bytes. */
  readonly totalMemory: number;
  /** Peak SM clock (kHz); 0 when the driver no longer reports it. */
  readonly clockRateKHz: number;
  /** Peak memory clock (kHz); 0 when not reported. */
  readonly memoryClockKHz: number;
  readonly memoryBusWidthBits: number;
  readonly l2CacheBytes: number;
  /** Most dynamic shared memory one block may opt in to (bytes). */
  readonly maxSharedMemoryPerBlockOptin: number;
  readonly maxThreadsPerBlock: number;
  /** CUDA version of the driver, e.g. 13000. */
  readonly driverVersion: number;

  readonly #dev: number;
  readonly #ctx: bigint;
  readonly #children = new ReleaseSet();

  /** Number of CUDA devices; 0 without any. Throws NativeLibraryError if libcuda cannot load. */
  static count(): number {
    return deviceCount();
  }

  /** Whether a GPU is usable here, with the reason when not (never throws). */
  static probe(): GpuProbe {
    try {
      const count = deviceCount();
      if (count === 0) return { ok: false, reason: "the CUDA driver reports no device" };
      return { ok: true, count, driverVersion: driverVersion() };
    } catch (e) {
      if (e instanceof NativeLibraryError) return { ok: false, reason: `no CUDA driver: ${e.library} not loadable (set ${e.envVar})` };
      return { ok: false, reason: e instanceof Error ? e.message.split("\n")[0] : String(e) };
    }
  }

  /** Opens device `ordinal` (retains its primary context and makes it current). */
  static open(ordinal = 0): CudaDevice {
    return new CudaDevice(ordinal);
  }

  private constructor(ordinal: number) {
    super(`CudaDevice(${ordinal})`);
    ensureCudaInit();
    const count = deviceCount();
    if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= count) {
      throw new ValidationError(`CudaDevice.ordinal: expected an integer in [0, ${count}), got ${ordinal}`, "ordinal", ordinal);
    }
    const lib = cuda();
    checkCu(lib.cuDeviceGet(out.i32, ordinal), "cuDeviceGet");
    const dev = out.i32[0];
    const nameBuf = new Uint8Array(256);
    checkCu(lib.cuDeviceGetName(nameBuf, nameBuf.length, dev), "cuDeviceGetName");
    const nameEnd = nameBuf.indexOf(0);
    this.name = new TextDecoder().decode(nameBuf.subarray(0, nameEnd < 0 ? nameBuf.length : nameEnd));
    this.ordinal = ordinal;
    this.#dev = dev;
    const major = attribute(CU.DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    const minor = attribute(CU.DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    this.computeCapability = Object.freeze({ major, minor });
    this.arch = `sm_${major}${minor}`;
    this.smCount = attribute(CU.DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
    this.clockRateKHz = optionalAttribute(CU.DEVICE_ATTRIBUTE_CLOCK_RATE, dev);
    this.memoryClockKHz = optionalAttribute(CU.DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, dev);
    this.memoryBusWidthBits = attribute(CU.DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, dev);
    this.l2CacheBytes = attribute(CU.DEVICE_ATTRIBUTE_L2_CACHE_SIZE, dev);
    this.maxSharedMemoryPerBlockOptin = attribute(CU.DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev);
    this.maxThreadsPerBlock = attribute(CU.DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, dev);
    const total = new BigUint64Array(1);
    checkCu(lib.cuDeviceTotalMem_v2(total, dev), "cuDeviceTotalMem");
    this.totalMemory = Number(total[0]);
    this.driverVersion = driverVersion();

    const ctxCell = new BigUint64Array(1);
    checkCu(lib.cuDevicePrimaryCtxRetain(ctxCell, dev), "cuDevicePrimaryCtxRetain");
    const ctx = ctxCell[0];
    this.#ctx = ctx;
    const children = this.#children;
    this.own(
      new Release(`CudaDevice(${ordinal})`, () => {
        // Parents free children first; then the primary context reference goes.
        const errors = children.releaseAll();
        forgetContext(ctx);
        checkCu(cuda().cuDevicePrimaryCtxRelease_v2(dev), "cuDevicePrimaryCtxRelease");
        if (errors.length) throw errors[0];
      }, null),
    );
    bindContext(ctx);
  }

  /** Theoretical DRAM bandwidth in bytes/s (2 transfers per memory clock × bus width); 0 if unknown. */
  get peakMemoryBandwidth(): number {
    return 2 * this.memoryClockKHz * 1e3 * (this.memoryBusWidthBits / 8);
  }

  /**
   * Whether kernels can be launched with programmatic dependent launch (`LaunchOptions.pdl`):
   * compute capability 9.0+ and a driver with cuLaunchKernelEx.
   */
  get supportsPdl(): boolean {
    return this.computeCapability.major >= 9 && launchKernelExAddress() !== 0n;
  }

  /** The primary context handle (CUcontext). */
  get context(): bigint {
    this.assertLive();
    return this.#ctx;
  }

  /** Number of live native resources this device still owns. */
  get numChildren(): number {
    return this.#children.size;
  }

  /** Makes this device's context current on the calling thread (cheap when it already is). */
  bind(): void {
    this.assertLive();
    bindContext(this.#ctx);
  }

  /**
   * Registers the release of a native resource created on this device (for the classes of
   * lib/runtime and lib/backends/cuda; not for applications). The device runs it on dispose
   * unless the owner released it first.
   */
  adopt(what: string, release: () => void): Release {
    this.assertLive();
    return new Release(what, release, this.#children);
  }

  /** Free and total device memory (bytes). */
  memInfo(): MemoryInfo {
    this.bind();
    const free = new BigUint64Array(1);
    const total = new BigUint64Array(1);
    checkCu(cuda().cuMemGetInfo_v2(free, total), "cuMemGetInfo");
    return { free: Number(free[0]), total: Number(total[0]) };
  }

  /** Waits for all work on the device's context (`cuCtxSynchronize`). */
  synchronize(): void {
    this.bind();
    checkCu(cuda().cuCtxSynchronize(), "cuCtxSynchronize");
  }

  /** Allocates `bytes` of device memory (256-byte aligned). */
  alloc(bytes: number): DeviceBuffer {
    return new DeviceBuffer(this, bytes);
  }

  /** Allocates `bytes` of page-locked host memory (fast, truly asynchronous copies). */
  allocHost(bytes: number): PinnedHostBuffer {
    return new PinnedHostBuffer(this, bytes);
  }

  /** Creates a stream (non-blocking with respect to the legacy default stream by default). */
  createStream(options: StreamOptions = {}): Stream {
    return new Stream(this, options);
  }

  /** Creates an event (with timing by default). */
  createEvent(options: EventOptions = {}): Event {
    return new Event(this, options);
  }

  /** Loads a CUBIN, fatbin or NUL-terminated PTX image. */
  loadModule(image: Uint8Array): CudaModule {
    return new CudaModule(this, image);
  }
}
