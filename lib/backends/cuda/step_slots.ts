/**
 * The host side of a CUDA session's step staging (step_staging.ts's layout), double-buffered so that a step
 * can be packed while the one before it is still in flight (`CudaSession.launch`: pipelined decode). Each
 * slot is a pinned buffer with typed views and an event recorded after its step's sampled ids are copied back
 * into it; a slot is packed again only once its previous step is done and its pending outputs were filled.
 */
import type { CudaDevice } from "../../cuda/device.ts";
import type { PinnedHostBuffer } from "../../cuda/memory.ts";
import type { Event, Stream } from "../../cuda/stream.ts";
import type { PendingStep } from "../../ir/step_io.ts";

/** One pinned staging buffer and its views. */
export interface StagingSlot {
  readonly pinned: PinnedHostBuffer;
  readonly i32: Int32Array;
  readonly f32: Float32Array;
  readonly u32: Uint32Array;
}

interface Slot extends StagingSlot {
  /** Recorded after the slot's last launched step (null: none yet). */
  done: Event | null;
  /** The launched step whose sampled ids still sit in this slot, not yet handed out. */
  pending: PendingStep | null;
}

/**
 * Two staging slots; `current` is the one the next step packs into.
 *
 * @example
 * ```ts
 * const slots = new StagingSlots(device, layout.words);
 * const s = slots.next(); // a free slot (its previous step waited for)
 * // pack into s.i32 / s.f32 / s.u32, copy to the device, launch, copy the sampled ids back into s.pinned
 * const step = slots.finishLaunch(stream, (ids) => out.sampledIds!.set(ids.subarray(0, R)));
 * step.wait();
 * ```
 */
export class StagingSlots {
  readonly #device: CudaDevice;
  readonly #words: number;
  readonly #slots: Slot[] = [];
  #cur = 0;

  constructor(device: CudaDevice, words: number) {
    this.#device = device;
    this.#words = words;
    this.#slots.push(this.#make());
  }

  /** The slot in use. */
  get current(): StagingSlot {
    return this.#slots[this.#cur];
  }

  /**
   * Moves to the other slot (made on first use) and returns it once it is free: its last step is done
   * and, if launched and not yet waited for, its outputs filled.
   */
  next(): StagingSlot {
    if (this.#slots.length === 1) this.#slots.push(this.#make());
    this.#cur ^= 1;
    const s = this.#slots[this.#cur];
    s.pending?.wait();
    s.done?.synchronize();
    return s;
  }

  /**
   * After a launched step's sampled ids were copied (asynchronously, on `stream`) into the current
   * slot: records its event and returns the pending step, whose `wait()` hands the slot's words to `fill`.
   */
  finishLaunch(stream: Stream, fill: (i32: Int32Array) => void): PendingStep {
    const s = this.#slots[this.#cur];
    s.done ??= this.#device.createEvent({ timing: false });
    const ev = s.done;
    ev.record(stream);
    let done = false;
    const step: PendingStep = {
      wait: () => {
        if (done) return;
        done = true;
        ev.synchronize();
        fill(s.i32);
        if (s.pending === step) s.pending = null;
      },
    };
    s.pending = step;
    return step;
  }

  #make(): Slot {
    const pinned = this.#device.allocHost(this.#words * 4);
    const w = this.#words;
    return {
      pinned,
      i32: new Int32Array(pinned.buffer, 0, w),
      f32: new Float32Array(pinned.buffer, 0, w),
      u32: new Uint32Array(pinned.buffer, 0, w),
      done: null,
      pending: null,
    };
  }
}
