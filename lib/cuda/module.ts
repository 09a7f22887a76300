/**
 * `CudaModule` (a loaded CUBIN/PTX image) and `Kernel` (one `extern "C"` function in it, launched
 * through the C shim from one packed argument buffer).
 */
import { checkCu } from "../../ffi/check.ts";
import { CU, cuda } from "../../ffi/cuda.ts";
import { cString, out } from "../../ffi/runtime.ts";
import { type KernelParamKind, LAUNCH_PDL, LaunchPacket, shim } from "../../ffi/shim.ts";
import { ValidationError } from "../util/errors.ts";
import type { CudaDevice } from "./device.ts";
import { bindContext, launchKernelAddress, launchKernelExAddress } from "./driver.ts";
import type { DeviceBuffer } from "./memory.ts";
import { DisposedError, NativeOwner } from "./owner.ts";
import type { Stream } from "./stream.ts";

export type { KernelParamKind } from "../../ffi/shim.ts";

/** Grid or block size: `n`, `[x]`, `[x, y]` or `[x, y, z]`. */
export type Dim3 = number | readonly [number, number?, number?];

/** One kernel argument: a device buffer (its address), a bigint address or 64-bit integer, or a number. */
export type KernelArg = DeviceBuffer | bigint | number;

/** Where and with how much dynamic shared memory a launch runs. */
export interface LaunchOptions {
  /** @default the legacy default stream */
  readonly stream?: Stream | null;
  /** Dynamic shared memory in bytes. @default 0 */
  readonly sharedMemBytes?: number;
  /**
   * Programmatic dependent launch (compute capability 9.0+, `CudaDevice.supportsPdl`): the kernel may
   * start while the previous kernel on the stream still runs, so it MUST execute `griddepcontrol.wait`
   * before it reads that kernel's output or writes anything it reads (kernels/common.cuh `pdlWait`).
   * Stream capture keeps it as a programmatic graph edge. @default false
   */
  readonly pdl?: boolean;
}

const NO_OPTIONS: LaunchOptions = Object.freeze({});

/**
 * A loaded module; frees its image on dispose (its kernels become unusable).
 *
 * @example
 * ```ts
 * using mod = device.loadModule(cubin);
 * const saxpy = mod.kernel("saxpy", ["ptr", "ptr", "f32", "u32"]);
 * saxpy.launch(Math.ceil(n / 256), 256, [y, x, 2.0, n]);
 * ```
 */
export class CudaModule extends NativeOwner {
  readonly device: CudaDevice;
  readonly #handle: bigint;
  readonly #ctx: bigint;
  readonly #kernels = new Map<string, Kernel>();

  /** Use `device.loadModule(image)`. */
  constructor(device: CudaDevice, image: Uint8Array) {
    super("CudaModule");
    if (image.byteLength === 0) throw new ValidationError("CudaModule.image: empty image", "image", image.byteLength);
    device.bind();
    const cell = new BigUint64Array(1);
    checkCu(cuda().cuModuleLoadData(cell, image), "cuModuleLoadData", `${image.byteLength}-byte image on ${device.name} (${device.arch})`);
    const handle = cell[0];
    const ctx = device.context;
    this.device = device;
    this.#handle = handle;
    this.#ctx = ctx;
    this.own(device.adopt("CudaModule", () => {
      bindContext(ctx);
      checkCu(cuda().cuModuleUnload(handle), "cuModuleUnload");
    }));
  }

  /** The CUmodule handle. */
  get handle(): bigint {
    this.assertLive();
    return this.#handle;
  }

  /**
   * The `extern "C"` kernel `name`, taking arguments of kinds `params` in order. Throws
   * CudaError(CUDA_ERROR_NOT_FOUND) when the module has no such function.
   */
  kernel(name: string, params: readonly KernelParamKind[]): Kernel {
    const known = this.#kernels.get(name);
    if (known) {
      if (known.params.join(",") !== params.join(",")) {
        throw new ValidationError(`Kernel ${name}: already declared with (${known.params.join(", ")}), got (${params.join(", ")})`, "params", params);
      }
      return known;
    }
    bindContext(this.#ctx);
    const cell = new BigUint64Array(1);
    checkCu(cuda().cuModuleGetFunction(cell, this.handle, cString(name)), "cuModuleGetFunction", name);
    const k = new Kernel(this, name, cell[0], params, this.#ctx);
    this.#kernels.set(name, k);
    return k;
  }

  /** Unloads the module. Idempotent. */
  override dispose(): void {
    super.dispose();
    this.#kernels.clear();
  }
}

/**
 * One kernel of a module. `launch` writes the grid, block, stream and arguments into one reusable
 * packet and makes one FFI call into the shim, which builds `void** kernelParams` and calls
 * cuLaunchKernel (cuLaunchKernelEx for a programmatic dependent launch, `{ pdl: true }`).
 */
export class Kernel {
  readonly module: CudaModule;
  readonly name: string;
  readonly params: readonly KernelParamKind[];
  readonly #fn: bigint;
  readonly #ctx: bigint;
  readonly #packet: LaunchPacket;
  readonly #launch: (launchFn: bigint, packet: Uint8Array) => number;
  readonly #launchFn: bigint;
  #launchExFn = 0n;

  /** Use `module.kernel(name, params)`. */
  constructor(module: CudaModule, name: string, fn: bigint, params: readonly KernelParamKind[], ctx: bigint) {
    this.module = module;
    this.name = name;
    this.params = Object.freeze([...params]);
    this.#fn = fn;
    this.#ctx = ctx;
    this.#packet = new LaunchPacket(params);
    this.#launch = shim().symbols.llmrt_launch;
    this.#launchFn = launchKernelAddress();
  }

  /** The CUfunction handle. */
  get handle(): bigint {
    if (this.module.isDisposed) throw new DisposedError(`Kernel ${this.name} (its module)`);
    return this.#fn;
  }

  /** A `CUfunction_attribute` value, e.g. CU.FUNC_ATTRIBUTE_NUM_REGS. */
  attribute(attrib: number): number {
    checkCu(cuda().cuFuncGetAttribute(out.i32, attrib, this.handle), "cuFuncGetAttribute", `${this.name} attribute ${attrib}`);
    return out.i32[0];
  }

  /** Allows launches with up to `bytes` of dynamic shared memory (beyond the 48 KiB default). */
  setMaxDynamicSharedMemory(bytes: number): void {
    checkCu(
      cuda().cuFuncSetAttribute(this.handle, CU.FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes),
      "cuFuncSetAttribute",
      `${this.name} max dynamic shared memory ${bytes}`,
    );
  }

  /** Asks for `percent` (0-100) of the SM's unified L1 / shared memory as shared memory (a hint to the driver). */
  setPreferredSharedCarveout(percent: number): void {
    checkCu(
      cuda().cuFuncSetAttribute(this.handle, CU.FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, percent),
      "cuFuncSetAttribute",
      `${this.name} preferred shared memory carveout ${percent}`,
    );
  }

  /** Enqueues one launch. `args` match `params` in order. */
  launch(grid: Dim3, block: Dim3, args: readonly KernelArg[], options: LaunchOptions = NO_OPTIONS): void {
    const fn = this.handle;
    const params = this.params;
    if (args.length !== params.length) {
      throw new ValidationError(`Kernel ${this.name}: expected ${params.length} arguments (${params.join(", ")}), got ${args.length}`, "args", args.length);
    }
    const packet = this.#packet;
    const shared = options.sharedMemBytes ?? 0;
    const stream = options.stream ? options.stream.handle : 0n;
    // Numbers are the common case; no arrays are built for them.
    if (typeof grid === "number" && typeof block === "number") packet.setLaunchDims(fn, stream, grid, 1, 1, block, 1, 1, shared);
    else {
      const g = typeof grid === "number" ? [grid] : grid, b = typeof block === "number" ? [block] : block;
      packet.setLaunchDims(fn, stream, g[0] ?? 1, g[1] ?? 1, g[2] ?? 1, b[0] ?? 1, b[1] ?? 1, b[2] ?? 1, shared);
    }
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      packet.setArg(i, typeof a === "object" ? a.ptr : a);
    }
    bindContext(this.#ctx);
    if (options.pdl) {
      const ex = this.#launchExFn || (this.#launchExFn = launchKernelExAddress());
      if (ex === 0n) throw new ValidationError(`Kernel ${this.name}: programmatic dependent launch needs cuLaunchKernelEx (CUDA 12.0+)`, "pdl", true);
      const code = shim().symbols.llmrt_launch_ex(ex, packet.bytes, LAUNCH_PDL);
      if (code !== 0) {
        checkCu(code, "cuLaunchKernelEx", `${this.name} (programmatic dependent launch) grid ${JSON.stringify(grid)} block ${JSON.stringify(block)}`);
      }
      return;
    }
    const code = this.#launch(this.#launchFn, packet.bytes);
    if (code !== 0) checkCu(code, "cuLaunchKernel", `${this.name} grid ${JSON.stringify(grid)} block ${JSON.stringify(block)} shared ${shared}`);
  }
}
