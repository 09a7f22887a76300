/**
 * Multi-LoRA on the CUDA session: the resident adapters' A / B matrices on the device (one
 * allocation per adapter, in the activation type, B transposed), one [slots, K] LoraEntry table per
 * targeted linear weight (kernels/lora.cu), and the step's token → slot array. Adapters are
 * uploaded when a slot's adapter changes (by identity), so a step costs only the token-slot copy.
 */
import type { Stream } from "../../cuda/stream.ts";
import type { LoraAdapterWeights } from "../../ir/step_io.ts";
import { f32ToBf16 } from "../../util/dtype.ts";
import { ValidationError } from "../../util/errors.ts";
import type { ElemType } from "./launch_types.ts";

/** Segments per table row: QKV (3) and gate/up (2) fuse several target modules into one linear. */
export const LORA_SEGMENTS = 4;
const ENTRY_BYTES = 32; // { u64 a; u64 b; i32 rank; i32 outOffset; i32 outFeatures; f32 scaling }
const ALIGN = 256;

/** Device memory as the tables use it (a LoraBuffer; tests pass a fake). */
export interface LoraBuffer {
  readonly ptr: bigint;
  copyFromHost(src: Uint8Array | Int32Array, options: { offset?: number; stream?: Stream | null }): void;
  dispose(): void;
}

/** The device side of the resident adapters. */
export class CudaLoraTables {
  readonly #alloc: (bytes: number) => LoraBuffer;
  readonly #stream: Stream | null;
  readonly #elem: ElemType;
  /** Adapter weights resident in each slot (by identity) and their device copy. */
  #resident: (LoraAdapterWeights | null)[] = [];
  #buffers: (LoraBuffer | null)[] = [];
  /** weight → its [slots, K] table (host bytes, device copy). */
  readonly #tables = new Map<string, { host: ArrayBuffer; dev: LoraBuffer }>();
  #tokenSlot: LoraBuffer | null = null;
  /** f32 [capTokens, K, rankStride]: the shrink's results; rankStride = the largest resident rank. */
  #tmp: LoraBuffer | null = null;
  #rankStride = 0;
  readonly #capTokens: number;
  #generation = 0;

  /** `alloc`: device memory (`(n) => device.alloc(n)`); copies are enqueued on `stream`. */
  constructor(alloc: (bytes: number) => LoraBuffer, stream: Stream | null, elem: ElemType, capTokens: number) {
    this.#alloc = alloc;
    this.#stream = stream;
    this.#elem = elem;
    this.#capTokens = capTokens;
  }

  /**
   * Changes whenever a table is made or dropped (a graph that launched the old set of tables is stale);
   * table contents (adapters replaced in their slots) may change under a graph: its launches read them.
   */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Brings the device copy up to `slots` and writes the step's token → slot array (`adapterIds` per
   * sequence, expanded over its tokens `seqStarts`; tokens up to `padTokens` get no adapter).
   * Returns the launch plan's view.
   */
  prepare(slots: readonly (LoraAdapterWeights | null)[], adapterIds: Int32Array, seqStarts: Int32Array, padTokens = 0): {
    tokenSlot: bigint;
    K: number;
    table: (weight: string) => bigint | undefined;
    tmp: bigint;
    rankStride: number;
  } {
    if (slots.length !== this.#resident.length) this.#resize(slots.length);
    let changed = false;
    slots.forEach((w, i) => {
      if (w !== this.#resident[i]) {
        this.#upload(i, w);
        changed = true;
      }
    });
    if (changed) { for (const t of this.#tables.values()) t.dev.copyFromHost(new Uint8Array(t.host), { stream: this.#stream }); }
    const S = seqStarts.length - 1, T = seqStarts[S];
    const ts = new Int32Array(Math.max(T, padTokens)).fill(-1);
    for (let s = 0; s < S; s++) {
      const slot = adapterIds[s];
      if (slot >= slots.length || (slot >= 0 && !slots[slot])) {
        throw new ValidationError(`Session.run: inputs.adapterIds[${s}] is ${slot}, which holds no adapter`, "adapterIds", slot);
      }
      ts.fill(slot, seqStarts[s], seqStarts[s + 1]);
    }
    this.#tokenSlot ??= this.#alloc(this.#capTokens * 4);
    this.#tokenSlot.copyFromHost(ts, { stream: this.#stream });
    const tokenSlot = this.#tokenSlot.ptr;
    let rank = 1;
    for (const w of slots) for (const segs of w?.values() ?? []) for (const seg of segs) rank = Math.max(rank, seg.rank);
    if (rank > this.#rankStride) { // a larger rank than any before: a larger scratch (graphs made with the old one are stale)
      this.#tmp?.dispose();
      this.#tmp = this.#alloc(this.#capTokens * LORA_SEGMENTS * rank * 4);
      this.#rankStride = rank;
      this.#generation++;
    }
    return { tokenSlot, K: LORA_SEGMENTS, table: (weight) => this.#tables.get(weight)?.dev.ptr, tmp: this.#tmp!.ptr, rankStride: this.#rankStride };
  }

  #resize(n: number): void {
    for (const b of this.#buffers) b?.dispose();
    for (const t of this.#tables.values()) t.dev.dispose();
    this.#tables.clear();
    this.#generation++;
    this.#resident = new Array(n).fill(null);
    this.#buffers = new Array(n).fill(null);
  }

  #table(weight: string): ArrayBuffer {
    let t = this.#tables.get(weight);
    if (!t) {
      const bytes = this.#resident.length * LORA_SEGMENTS * ENTRY_BYTES;
      t = { host: new ArrayBuffer(bytes), dev: this.#alloc(bytes) };
      this.#tables.set(weight, t);
      this.#generation++;
    }
    return t.host;
  }

  /** Slot `i` now holds `w`: its matrices uploaded, every table's row `i` rewritten. */
  #upload(i: number, w: LoraAdapterWeights | null): void {
    this.#buffers[i]?.dispose();
    this.#buffers[i] = null;
    this.#resident[i] = w;
    const eb = this.#elem === "bf16" ? 2 : 4;
    const clear = (host: ArrayBuffer): void => void new Uint8Array(host, i * LORA_SEGMENTS * ENTRY_BYTES, LORA_SEGMENTS * ENTRY_BYTES).fill(0);
    for (const t of this.#tables.values()) clear(t.host);
    if (!w) return;
    // One allocation: each segment's A [rank, inF] and Bᵀ [rank, outFeatures], 256-byte aligned.
    let total = 0;
    const place: { weight: string; k: number; a: number; b: number }[] = [];
    for (const [weight, segs] of w) {
      if (segs.length > LORA_SEGMENTS) {
        throw new ValidationError(`LoRA on CUDA: ${segs.length} target modules on ${weight}; at most ${LORA_SEGMENTS}`, "loraRequest", weight);
      }
      segs.forEach((seg, k) => {
        const a = total;
        total += Math.ceil((seg.a.length * eb) / ALIGN) * ALIGN;
        const b = total;
        total += Math.ceil((seg.b.length * eb) / ALIGN) * ALIGN;
        place.push({ weight, k, a, b });
      });
    }
    const buf = this.#alloc(Math.max(total, ALIGN));
    this.#buffers[i] = buf;
    for (const { weight, k, a, b } of place) {
      const seg = w.get(weight)![k];
      const bt = new Float32Array(seg.b.length); // [outFeatures, rank] → [rank, outFeatures]
      for (let o = 0; o < seg.outFeatures; o++) for (let r = 0; r < seg.rank; r++) bt[r * seg.outFeatures + o] = seg.b[o * seg.rank + r];
      buf.copyFromHost(this.#bytes(seg.a), { offset: a, stream: this.#stream });
      buf.copyFromHost(this.#bytes(bt), { offset: b, stream: this.#stream });
      const host = this.#table(weight);
      const off = (i * LORA_SEGMENTS + k) * ENTRY_BYTES;
      const u64 = new BigUint64Array(host, off, 2), i32 = new Int32Array(host, off + 16, 3), f32 = new Float32Array(host, off + 28, 1);
      u64[0] = buf.ptr + BigInt(a);
      u64[1] = buf.ptr + BigInt(b);
      i32[0] = seg.rank;
      i32[1] = seg.outOffset;
      i32[2] = seg.outFeatures;
      f32[0] = seg.scaling;
    }
  }

  #bytes(f: Float32Array): Uint8Array {
    const v = this.#elem === "bf16" ? f32ToBf16(f) : f;
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }

  dispose(): void {
    this.#resize(0);
    this.#tokenSlot?.dispose();
    this.#tokenSlot = null;
    this.#tmp?.dispose();
    this.#tmp = null;
    this.#rankStride = 0;
  }
}
