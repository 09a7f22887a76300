/**
 * Device memory (`DeviceBuffer`) and page-locked host memory (`PinnedHostBuffer`).
 * Device pointers are bigint, so `buf.ptr + 256n` is an address inside the buffer.
 */
import { checkCu } from "../../ffi/check.ts";
import { CU, cuda } from "../../ffi/cuda.ts";
import { nativeView } from "../../ffi/runtime.ts";
import { ValidationError } from "../util/errors.ts";
import type { CudaDevice } from "./device.ts";
import { bindContext } from "./driver.ts";
import { NativeOwner } from "./owner.ts";
import type { Stream } from "./stream.ts";

/** Host memory a copy reads or writes: JS memory, or pinned memory for truly async copies. */
export type HostMemory = ArrayBufferView | PinnedHostBuffer;

/** Options of a copy: byte offset into the device buffer, and a stream to order it on. */
export interface CopyOptions {
  /** Byte offset into the device buffer. @default 0 */
  readonly offset?: number;
  /** Stream to enqueue on (async); without one the copy is synchronous. */
  readonly stream?: Stream | null;
}

function checkSize(what: string, bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new ValidationError(`${what}: expected a positive integer byte count, got ${bytes}`, what, bytes);
  }
}

function hostBytes(m: HostMemory): Uint8Array {
  if (m instanceof PinnedHostBuffer) return m.bytes;
  return new Uint8Array(m.buffer, m.byteOffset, m.byteLength);
}

function checkRange(what: string, offset: number, bytes: number, size: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(bytes) || bytes < 0 || offset + bytes > size) {
    throw new RangeError(`${what}: bytes [${offset}, ${offset + bytes}) outside a buffer of ${size} bytes`);
  }
}

/**
 * Device memory from `cuMemAlloc`, freed by `dispose()`, by its device's dispose, or (as a net) when
 * collected.
 *
 * @example
 * ```ts
 * using x = device.alloc(4 * 1024);          // [1024] f32
 * x.copyFromHost(new Float32Array(1024).fill(2));
 * const back = new Float32Array(1024);
 * x.copyToHost(back);
 * ```
 */
export class DeviceBuffer extends NativeOwner {
  readonly device: CudaDevice;
  readonly byteLength: number;
  readonly #ptr: bigint;

  /** Use `device.alloc(bytes)`. */
  constructor(device: CudaDevice, bytes: number) {
    super("DeviceBuffer");
    checkSize("DeviceBuffer.byteLength", bytes);
    device.bind();
    const cell = new BigUint64Array(1);
    checkCu(cuda().cuMemAlloc_v2(cell, bytes), "cuMemAlloc", `${bytes} bytes on ${device.name}`);
    const ptr = cell[0];
    const ctx = device.context;
    this.device = device;
    this.byteLength = bytes;
    this.#ptr = ptr;
    this.own(device.adopt(`DeviceBuffer(${bytes})`, () => {
      bindContext(ctx);
      checkCu(cuda().cuMemFree_v2(ptr), "cuMemFree");
    }));
  }

  /** The device address (CUdeviceptr). Throws once disposed. */
  get ptr(): bigint {
    this.assertLive();
    return this.#ptr;
  }

  /** Copies all of `src` to `offset` in this buffer. */
  copyFromHost(src: HostMemory, options: CopyOptions = {}): void {
    const bytes = hostBytes(src);
    const offset = options.offset ?? 0;
    checkRange("DeviceBuffer.copyFromHost", offset, bytes.byteLength, this.byteLength);
    if (bytes.byteLength === 0) return;
    const dst = this.ptr + BigInt(offset);
    this.device.bind();
    if (options.stream) {
      checkCu(cuda().cuMemcpyHtoDAsync_v2(dst, bytes, bytes.byteLength, options.stream.handle), "cuMemcpyHtoDAsync");
    } else {
      checkCu(cuda().cuMemcpyHtoD_v2(dst, bytes, bytes.byteLength), "cuMemcpyHtoD");
    }
  }

  /** Fills all of `dst` from `offset` in this buffer. */
  copyToHost(dst: HostMemory, options: CopyOptions = {}): void {
    const bytes = hostBytes(dst);
    const offset = options.offset ?? 0;
    checkRange("DeviceBuffer.copyToHost", offset, bytes.byteLength, this.byteLength);
    if (bytes.byteLength === 0) return;
    const src = this.ptr + BigInt(offset);
    this.device.bind();
    if (options.stream) {
      checkCu(cuda().cuMemcpyDtoHAsync_v2(bytes, src, bytes.byteLength, options.stream.handle), "cuMemcpyDtoHAsync");
    } else {
      checkCu(cuda().cuMemcpyDtoH_v2(bytes, src, bytes.byteLength), "cuMemcpyDtoH");
    }
  }

  /** Copies `bytes` from device memory `src` (+`srcOffset`) to this buffer (+`dstOffset`). */
  copyFromDevice(
    src: DeviceBuffer,
    bytes: number = Math.min(src.byteLength, this.byteLength),
    options: { srcOffset?: number; dstOffset?: number; stream?: Stream | null } = {},
  ): void {
    const srcOffset = options.srcOffset ?? 0;
    const dstOffset = options.dstOffset ?? 0;
    checkRange("DeviceBuffer.copyFromDevice (source)", srcOffset, bytes, src.byteLength);
    checkRange("DeviceBuffer.copyFromDevice (target)", dstOffset, bytes, this.byteLength);
    if (bytes === 0) return;
    const dst = this.ptr + BigInt(dstOffset);
    const from = src.ptr + BigInt(srcOffset);
    this.device.bind();
    if (options.stream) {
      checkCu(cuda().cuMemcpyDtoDAsync_v2(dst, from, bytes, options.stream.handle), "cuMemcpyDtoDAsync");
    } else {
      checkCu(cuda().cuMemcpyDtoD_v2(dst, from, bytes), "cuMemcpyDtoD");
    }
  }

  /** Sets every byte to `value` (0..255). */
  fill(value: number, options: { stream?: Stream | null } = {}): void {
    if (!Number.isInteger(value) || value < 0 || value > 255) throw new ValidationError(`DeviceBuffer.fill: expected a byte, got ${value}`, "value", value);
    this.device.bind();
    if (options.stream) checkCu(cuda().cuMemsetD8Async(this.ptr, value, this.byteLength, options.stream.handle), "cuMemsetD8Async");
    else checkCu(cuda().cuMemsetD8_v2(this.ptr, value, this.byteLength), "cuMemsetD8");
  }

  /** Sets every 32-bit word to `word` (byteLength must be a multiple of 4), e.g. a float's bits. */
  fillU32(word: number, options: { stream?: Stream | null } = {}): void {
    if (this.byteLength % 4 !== 0) throw new RangeError(`DeviceBuffer.fillU32: ${this.byteLength} bytes is not a whole number of words`);
    this.device.bind();
    const n = this.byteLength / 4;
    if (options.stream) checkCu(cuda().cuMemsetD32Async(this.ptr, word >>> 0, n, options.stream.handle), "cuMemsetD32Async");
    else checkCu(cuda().cuMemsetD32_v2(this.ptr, word >>> 0, n), "cuMemsetD32");
  }
}

/**
 * Page-locked host memory (`cuMemHostAlloc`): the source or target of truly asynchronous copies.
 * `bytes` views the native memory directly; do not keep views past `dispose()`.
 *
 * @example
 * ```ts
 * using pinned = device.allocHost(4096);
 * new Float32Array(pinned.buffer).fill(1);
 * deviceBuf.copyFromHost(pinned, { stream });
 * stream.synchronize();
 * ```
 */
export class PinnedHostBuffer extends NativeOwner {
  readonly device: CudaDevice;
  readonly byteLength: number;
  readonly #addr: bigint;
  readonly #bytes: Uint8Array;

  /** Use `device.allocHost(bytes)`. */
  constructor(device: CudaDevice, bytes: number) {
    super("PinnedHostBuffer");
    checkSize("PinnedHostBuffer.byteLength", bytes);
    device.bind();
    const cell = new BigUint64Array(1);
    checkCu(cuda().cuMemHostAlloc(cell, bytes, CU.MEMHOSTALLOC_PORTABLE), "cuMemHostAlloc", `${bytes} bytes`);
    const addr = cell[0];
    const ctx = device.context;
    this.device = device;
    this.byteLength = bytes;
    this.#addr = addr;
    this.#bytes = new Uint8Array(nativeView(addr, bytes));
    this.own(device.adopt(`PinnedHostBuffer(${bytes})`, () => {
      bindContext(ctx);
      checkCu(cuda().cuMemFreeHost(addr), "cuMemFreeHost");
    }));
  }

  /** The host address of the memory. */
  get address(): bigint {
    this.assertLive();
    return this.#addr;
  }

  /** The memory as bytes (a view of native memory, valid until dispose). */
  get bytes(): Uint8Array {
    this.assertLive();
    return this.#bytes;
  }

  /** The memory as an ArrayBuffer, for typed views: `new Float32Array(pinned.buffer)`. */
  get buffer(): ArrayBuffer {
    return this.bytes.buffer as ArrayBuffer;
  }
}
