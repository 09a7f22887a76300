/**
 * Zero-copy step staging (session option `zeroCopyStaging`, kernels/staging.cu): instead of a host→device copy of the
 * packed step, a device→device copy per run of forwarded token ids and a device→host copy of the sampled ids — three
 * copy-engine operations around every step — one `stage_in` kernel reads the staged words straight from the pinned
 * host slot (under unified addressing its host address is its device address) and takes forwarded token ids from the
 * previous step's sampled ids on the device, and one `stage_out` kernel writes the sampled ids back into the slot.
 * Pure: no FFI.
 *
 * @example
 * ```ts
 * const end = packStep(layout, slot.i32, slot.f32, slot.u32, inp, pad);
 * packForwardRows(layout, slot.i32, fwd.rows, pad?.bucket ?? inp.tokenIds.length, launchedRows);
 * launches = [stageInLaunch(layout, slot.pinned.address, io.ptr, end, true, numTokens), ...step, stageOutLaunch(layout, slot.pinned.address, io.ptr, rows)];
 * ```
 */
import { InternalError, ValidationError } from "../../util/errors.ts";
import type { KernelLaunch } from "./launch_types.ts";
import type { StagingLayout } from "./step_staging.ts";

/** KernelLaunch.op of the staging launches: they belong to no plan op. */
export const STAGE_OP = -1;

const BLOCK = 256;

/**
 * The launch copying staged words [offsets.temperature, end) from the host slot at `host` into the device staging at
 * `dev` (the sampled ids stay: forwarded tokens read them; of the token ids and positions only the step's `numTokens`);
 * with `forwarded`, token t's id is the previous step's sampled id of row forwardRows[t] (host words from
 * `layout.forwardRows`, -1: the host's id).
 */
export function stageInLaunch(layout: StagingLayout, host: bigint, dev: bigint, end: number, forwarded: boolean, numTokens: number): KernelLaunch {
  const o = layout.offsets, from = o.temperature;
  if (o.blockTables - o.positions !== o.positions - o.tokenIds) {
    throw new InternalError("stage_in: positions must follow the token ids in a segment of their size");
  }
  return {
    kind: "kernel",
    op: STAGE_OP,
    kernel: "stage_in",
    grid: [Math.max(1, Math.ceil((end - from) / BLOCK)), 1, 1],
    block: BLOCK,
    args: [
      host,
      dev,
      from,
      end,
      forwarded ? host + BigInt(layout.forwardRows * 4) : 0n,
      o.tokenIds,
      o.positions - o.tokenIds,
      numTokens,
      dev + BigInt(o.sampledIds * 4),
    ],
  };
}

/** The launch writing the step's `rows` sampled ids from the device staging at `dev` into the host slot at `host` (words [0, rows)). */
export function stageOutLaunch(layout: StagingLayout, host: bigint, dev: bigint, rows: number): KernelLaunch {
  const o = layout.offsets;
  return {
    kind: "kernel",
    op: STAGE_OP,
    kernel: "stage_out",
    grid: [Math.max(1, Math.ceil(rows / BLOCK)), 1, 1],
    block: BLOCK,
    args: [dev + BigInt(o.sampledIds * 4), host + BigInt(o.sampledIds * 4), rows],
  };
}

/**
 * Packs forwarded rows (Session.launch's `inputs.forwardedTokens.rows`, -1: the id the host staged) into the host
 * words at `layout.forwardRows` for `numTokens` tokens (a graph bucket's dummy tokens: -1). A row must be one of the
 * `launchedRows` rows of the step launched before.
 */
export function packForwardRows(layout: StagingLayout, i32: Int32Array, rows: Int32Array, numTokens: number, launchedRows: number): void {
  const at = layout.forwardRows;
  for (let t = 0; t < numTokens; t++) {
    const r = t < rows.length ? rows[t] : -1;
    if (r >= launchedRows) throw new ValidationError(`Session.launch: inputs.forwardedTokens.rows[${t}] is ${r}`, "forwardedTokens.rows", r);
    i32[at + t] = r < 0 ? -1 : r;
  }
}
