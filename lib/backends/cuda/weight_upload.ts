/**
 * Weight upload through pinned staging (issue 16 item 4): the bytes of the weight allocation are
 * written in device-offset order into one of two page-locked staging buffers; a full buffer is sent
 * with one asynchronous copy and the other buffer is filled (from JS memory, or read straight from
 * the engine file) while the copy runs. A buffer is refilled only once its previous copy is done
 * (an event per buffer). Compared with one synchronous pageable copy per tensor, the host fill and
 * the DMA overlap and the driver's own bounce copy is gone.
 */
import type { CudaDevice } from "../../cuda/device.ts";
import type { DeviceBuffer, PinnedHostBuffer } from "../../cuda/memory.ts";
import type { Event, Stream } from "../../cuda/stream.ts";
import { InternalError } from "../../util/errors.ts";

/** Bytes of each of the two staging buffers. */
export const STAGING_CHUNK_BYTES = 64 << 20;

interface Slot {
  readonly host: PinnedHostBuffer;
  readonly done: Event;
  pending: boolean;
}

/**
 * Streams bytes into a device buffer through two pinned staging buffers.
 *
 * @example
 * ```ts
 * const up = new StagedUpload(device, stream, weights, 16 << 20);
 * up.write(0, bytesOfFirstTensor);
 * engine.readTensorInto?.("w", (max) => up.reserve(256, max));
 * up.finish(); // every copy done, staging freed
 * ```
 */
export class StagedUpload {
  readonly #stream: Stream;
  readonly #dst: DeviceBuffer;
  readonly #slots: Slot[];
  readonly #cap: number;
  #cur = 0;
  /** Device offset the current buffer starts at (-1: no chunk open). */
  #start = -1;
  /** Bytes of the current buffer filled (from #start). */
  #fill = 0;
  /** Bytes copied (for the load statistics). */
  bytes = 0;

  constructor(device: CudaDevice, stream: Stream, dst: DeviceBuffer, chunkBytes = STAGING_CHUNK_BYTES) {
    this.#stream = stream;
    this.#dst = dst;
    this.#cap = Math.max(4096, Math.min(chunkBytes, dst.byteLength));
    this.#slots = [];
    try {
      for (let i = 0; i < 2; i++) this.#slots.push({ host: device.allocHost(this.#cap), done: device.createEvent({ timing: false }), pending: false });
    } catch (e) {
      this.#free();
      throw e;
    }
  }

  /**
   * A staging view of at most `maxBytes` (> 0) bytes that will land at device offset `offset`; the
   * caller fills all of it before the next call. Offsets must not go backwards within a chunk.
   */
  reserve(offset: number, maxBytes: number): Uint8Array {
    if (maxBytes <= 0) throw new InternalError(`StagedUpload.reserve: ${maxBytes} bytes`);
    if (this.#start >= 0) {
      const at = offset - this.#start;
      if (at < this.#fill || at >= this.#cap) this.#flush();
    }
    if (this.#start < 0) this.#open(offset);
    const at = offset - this.#start;
    const n = Math.min(maxBytes, this.#cap - at);
    this.#fill = at + n;
    return this.#slots[this.#cur].host.bytes.subarray(at, at + n);
  }

  /** Copies `src` to device offset `offset` (through the staging buffers). */
  write(offset: number, src: Uint8Array): void {
    for (let done = 0; done < src.byteLength;) {
      const view = this.reserve(offset + done, src.byteLength - done);
      view.set(src.subarray(done, done + view.byteLength));
      done += view.byteLength;
    }
  }

  /** Sends the last chunk, waits for every copy and frees the staging buffers. */
  finish(): void {
    try {
      this.#flush();
      this.#stream.synchronize();
    } finally {
      this.#free();
    }
  }

  /** Frees the staging buffers without waiting (after an error). */
  abort(): void {
    try {
      this.#stream.synchronize();
    } catch {
      // the device is in trouble already: the caller's error stands
    }
    this.#free();
  }

  #open(offset: number): void {
    const slot = this.#slots[this.#cur];
    if (slot.pending) {
      slot.done.synchronize(); // its previous copy has read the buffer
      slot.pending = false;
    }
    this.#start = offset;
    this.#fill = 0;
  }

  #flush(): void {
    if (this.#start < 0 || this.#fill === 0) {
      this.#start = -1;
      return;
    }
    const slot = this.#slots[this.#cur];
    this.#dst.copyFromHost(slot.host.bytes.subarray(0, this.#fill), { offset: this.#start, stream: this.#stream });
    slot.done.record(this.#stream);
    slot.pending = true;
    this.bytes += this.#fill;
    this.#cur ^= 1;
    this.#start = -1;
    this.#fill = 0;
  }

  #free(): void {
    for (const s of this.#slots) {
      s.done.dispose();
      s.host.dispose();
    }
    this.#slots.length = 0;
  }
}

/** What {@link uploadWeights} did: bytes sent, wall time, and whether pinned staging was used. */
export interface WeightUploadStats {
  readonly bytes: number;
  readonly ms: number;
  readonly staged: boolean;
}

/** One tensor of the weight allocation: its device offset, and whether its stored bytes go up as they are. */
export interface WeightSlice {
  readonly name: string;
  readonly offset: number;
  readonly direct: boolean;
}

/** The part of an engine {@link uploadWeights} reads. */
export interface WeightSource {
  readTensor(name: string): Uint8Array;
  readTensorInto?(name: string, next: (maxBytes: number) => Uint8Array): void;
}

/**
 * Uploads every slice (in offset order) into `dst`: direct slices streamed from the engine into
 * pinned staging (read straight from the engine file when it is file-backed), the others through
 * `converted(name)`. Falls back to one synchronous pageable copy per tensor when pinned staging
 * cannot be allocated. A corrupt tensor (FormatError from the engine) propagates.
 */
export function uploadWeights(
  device: CudaDevice,
  stream: Stream,
  dst: DeviceBuffer,
  engine: WeightSource,
  slices: readonly WeightSlice[],
  converted: (name: string) => Uint8Array,
  chunkBytes: number = STAGING_CHUNK_BYTES,
): WeightUploadStats {
  const t0 = performance.now();
  const sorted = [...slices].sort((a, b) => a.offset - b.offset);
  let up: StagedUpload | null = null;
  try {
    up = new StagedUpload(device, stream, dst, chunkBytes);
  } catch {
    up = null; // no pinned memory to spare: pageable copies below
  }
  if (!up) {
    let bytes = 0;
    for (const s of sorted) {
      const b = s.direct ? engine.readTensor(s.name) : converted(s.name);
      dst.copyFromHost(b, { offset: s.offset });
      bytes += b.byteLength;
    }
    return { bytes, ms: performance.now() - t0, staged: false };
  }
  try {
    for (const s of sorted) {
      if (s.direct && engine.readTensorInto) {
        let pos = s.offset;
        engine.readTensorInto(s.name, (max) => {
          const v = up!.reserve(pos, max);
          pos += v.byteLength;
          return v;
        });
      } else {
        up.write(s.offset, s.direct ? engine.readTensor(s.name) : converted(s.name));
      }
    }
    up.finish();
  } catch (e) {
    up.abort();
    throw e;
  }
  return { bytes: up.bytes, ms: performance.now() - t0, staged: true };
}
