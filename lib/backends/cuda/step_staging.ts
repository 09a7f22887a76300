/**
 * The one staging region of a CUDA step: every per-step input (token ids, positions, sequence
 * starts, logits rows, block tables, sampling parameters) and the sampled ids, as 32-bit words at
 * fixed offsets. The host packs the inputs into pinned memory and sends them with ONE host→device
 * copy of the used prefix; the sampled ids (the first segment) come back with one small
 * device→host copy. Pure arithmetic: no FFI.
 */
import type { StepInputs } from "../../ir/step_io.ts";
import type { StepIoPointers } from "./launch_plan.ts";

/** Word offset of each segment. */
export type StagingSegment = keyof StepIoPointers;

/** Sizes and word offsets of the staging region. */
export interface StagingLayout {
  /** Most logits rows / sequences per step. */
  readonly capSeqs: number;
  /** Most packed tokens per step. */
  readonly capTokens: number;
  /** Block-table row stride (blocks per sequence). */
  readonly blockStride: number;
  readonly offsets: Readonly<Record<StagingSegment, number>>;
  /** Total words (the device staging). */
  readonly words: number;
  /** Host slots only, after `words`: zero-copy staging's forwarded rows, one word a token (stage_launch.ts). */
  readonly forwardRows: number;
  /** Words of a host slot. */
  readonly hostWords: number;
}

const ALIGN_WORDS = 64; // 256 bytes

/** Lays out the segments; sampledIds first (read back), block tables last (copied only as far as used). */
export function stagingLayout(capTokens: number, capSeqs: number, blockStride: number): StagingLayout {
  const sizes: [StagingSegment, number][] = [
    ["sampledIds", capSeqs], // [rows] i32 (output)
    ["temperature", capSeqs], // [rows] f32
    ["topK", capSeqs], // [rows] i32
    ["topP", capSeqs], // [rows] f32
    ["minP", capSeqs], // [rows] f32
    ["seed", 2 * capSeqs], // [rows, 2] u32
    ["step", capSeqs], // [rows] i32
    ["maskIndex", capSeqs], // [rows] i32: the row's token mask, -1 = none
    ["logitRows", capSeqs], // [rows] i32
    ["seqStarts", capSeqs + 1], // [seqs + 1] i32
    ["logitPositions", capSeqs], // [rows] i32: positions[logitRows[r]]
    ["logitSeqStarts", capSeqs + 1], // [seqs + 1] i32: logits rows before each sequence
    ["tokenIds", capTokens], // [tokens] i32
    ["positions", capTokens], // [tokens] i32
    ["blockTables", capSeqs * blockStride], // [seqs, blockStride] i32
  ];
  const offsets = {} as Record<StagingSegment, number>;
  let w = 0;
  for (const [name, n] of sizes) {
    offsets[name] = w;
    w += Math.ceil(n / ALIGN_WORDS) * ALIGN_WORDS;
  }
  const hostWords = w + Math.ceil(capTokens / ALIGN_WORDS) * ALIGN_WORDS;
  return { capSeqs, capTokens, blockStride, offsets, words: w, forwardRows: w, hostWords };
}

/** Device addresses of the segments for a staging buffer at `base`. */
export function stagingPointers(layout: StagingLayout, base: bigint): StepIoPointers {
  const p = {} as Record<StagingSegment, bigint>;
  for (const [name, off] of Object.entries(layout.offsets)) p[name as StagingSegment] = base + BigInt(off * 4);
  return p;
}

/** A decode step padded to a graph bucket: dummy tokens are one-token sequences at position 0 in `scratchBlock`. */
export interface BucketPadding {
  readonly bucket: number;
  readonly scratchBlock: number;
}

/**
 * Packs `inp` into the staging words (views `i32` / `f32` / `u32` over the same memory). With
 * `pad`, the step (one token per sequence, one logits row per token, rows in token order) is
 * extended to `pad.bucket` tokens whose rows are sampled greedily and ignored. Returns how many
 * words from the start must be copied to the device.
 */
export function packStep(
  layout: StagingLayout,
  i32: Int32Array,
  f32: Float32Array,
  u32: Uint32Array,
  inp: StepInputs,
  pad: BucketPadding | null,
): number {
  const o = layout.offsets;
  const T = inp.tokenIds.length, S = inp.seqStarts.length - 1, R = inp.logitRows.length;
  const nT = pad ? pad.bucket : T, nS = pad ? pad.bucket : S, nR = pad ? pad.bucket : R;
  i32.set(inp.tokenIds, o.tokenIds);
  i32.set(inp.positions, o.positions);
  i32.set(inp.seqStarts, o.seqStarts);
  i32.set(inp.logitRows, o.logitRows);
  for (let t = T; t < nT; t++) {
    i32[o.tokenIds + t] = 0;
    i32[o.positions + t] = 0;
    i32[o.logitRows + t] = t;
  }
  for (let s = S + 1; s <= nS; s++) i32[o.seqStarts + s] = s;
  if (!pad) packLogitRows(i32, o.logitPositions, o.logitSeqStarts, inp);
  // Block tables, re-strided to the device's row stride (a row only needs the slots its positions use).
  const mb = inp.maxBlocksPerSeq, stride = layout.blockStride, bt = o.blockTables;
  if (mb === stride) {
    i32.set(inp.blockTables.subarray(0, S * stride), bt);
  } else {
    const n = Math.min(mb, stride);
    for (let s = 0; s < S; s++) i32.set(inp.blockTables.subarray(s * mb, s * mb + n), bt + s * stride);
  }
  if (pad) { for (let s = S; s < nS; s++) i32[bt + s * stride] = pad.scratchBlock; }
  // Sampling: the rows' parameters, greedy where absent (dummy rows, logits-only steps).
  const sp = inp.sampling;
  if (sp) {
    f32.set(sp.temperature.subarray(0, R), o.temperature);
    i32.set(sp.topK.subarray(0, R), o.topK);
    f32.set(sp.topP.subarray(0, R), o.topP);
    f32.set(sp.minP.subarray(0, R), o.minP);
    u32.set(sp.seed.subarray(0, 2 * R), o.seed);
    i32.set(sp.step.subarray(0, R), o.step);
    if (sp.tokenMasks) i32.set(sp.tokenMasks.rowMask.subarray(0, R), o.maskIndex);
    else i32.fill(-1, o.maskIndex, o.maskIndex + R);
  }
  for (let r = sp ? R : 0; r < nR; r++) {
    f32[o.temperature + r] = 0;
    i32[o.topK + r] = 0;
    f32[o.topP + r] = 1;
    f32[o.minP + r] = 0;
    u32[o.seed + 2 * r] = 0;
    u32[o.seed + 2 * r + 1] = 0;
    i32[o.step + r] = 0;
    i32[o.maskIndex + r] = -1;
  }
  return bt + nS * stride;
}

/**
 * Last-layer pruning's inputs (launch_types.ts StepShape.pruneRows): each logits row's position, and how many
 * logits rows come before each sequence's first token (sequence s's rows are [starts[s], starts[s + 1]) when
 * the rows are increasing, as logitRowsIncreasing checks).
 */
function packLogitRows(i32: Int32Array, posAt: number, startsAt: number, inp: StepInputs): void {
  const rows = inp.logitRows, R = rows.length, S = inp.seqStarts.length - 1;
  let r = 0;
  for (let s = 0; s <= S; s++) {
    const start = inp.seqStarts[s];
    while (r < R && rows[r] < start) r++;
    i32[startsAt + s] = s === S ? R : r;
  }
  for (let j = 0; j < R; j++) i32[posAt + j] = inp.positions[rows[j]];
}

/** Whether a step's logits rows are strictly increasing token rows (last-layer pruning needs it). */
export function logitRowsIncreasing(inp: StepInputs): boolean {
  const rows = inp.logitRows;
  for (let j = 1; j < rows.length; j++) if (rows[j] <= rows[j - 1]) return false;
  return true;
}

/** The most tokens one sequence brings to the step (StepShape.maxSeqTokens). */
export function maxSeqTokens(inp: StepInputs): number {
  let m = 0;
  for (let s = 0; s + 1 < inp.seqStarts.length; s++) m = Math.max(m, inp.seqStarts[s + 1] - inp.seqStarts[s]);
  return m;
}

/** Whether every sequence's first token of the step is at position 0: a new prompt each (StepShape.freshPrompts). */
export function freshPrompts(inp: StepInputs): boolean {
  const S = inp.seqStarts.length - 1;
  for (let s = 0; s < S; s++) if (inp.seqStarts[s + 1] > inp.seqStarts[s] && inp.positions[inp.seqStarts[s]] !== 0) return false;
  return S > 0;
}

/**
 * Whether a step is a pure decode step a graph can run: every sequence brings exactly one token and
 * every token is a logits row, in order.
 */
export function isDecodeStep(inp: StepInputs): boolean {
  const T = inp.tokenIds.length;
  if (inp.seqStarts.length - 1 !== T || inp.logitRows.length !== T) return false;
  for (let i = 0; i < T; i++) if (inp.seqStarts[i] !== i || inp.logitRows[i] !== i) return false;
  return true;
}
