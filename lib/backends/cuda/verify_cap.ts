/**
 * How many tokens a speculative verify step (one-token sequences over one block table,
 * StepInputs.readsStepKv) may hold and still round every row as a one-token decode step: the largest
 * decode bucket whose launch plan runs bucket 1's kernels (the skinny GEMMs' row count aside). Past it
 * the plan changes kernels — the RMSNorm leaves the GEMV prologue once rows × hidden exceed its
 * staging, cuBLASLt takes over above 8 rows — which round differently in bf16. Pure: no FFI.
 */
import { type AttentionChoice, type LaunchEnv, planLaunches } from "./launch_plan.ts";

/**
 * The verify-token cap for `buckets` (ascending, starting at 1); `attentionFor(b)` is the attention
 * path of bucket b's graph.
 *
 * @example
 * ```ts
 * maxVerifyTokens(session.launchEnv(kv), session.buckets, (b) => ({ kind: "generic" })); // e.g. 4 on llama-3.2-1b
 * ```
 */
export function maxVerifyTokens(env: LaunchEnv, buckets: readonly number[], attentionFor: (bucket: number) => AttentionChoice): number {
  const kernels = (b: number): string =>
    planLaunches(env, { numTokens: b, numSeqs: b, numRows: b, attention: attentionFor(b), sample: true, writeKvFirst: true })
      .map((l) => (l.kind === "gemm" ? `gemm${l.invariant ? "" : "*"}` : l.kernel.replace(/_m[1248]$/, "")))
      .join(" ");
  const one = kernels(1);
  let cap = 1;
  for (const b of buckets) {
    if (b === 1) continue;
    if (kernels(b) !== one) break;
    cap = b;
  }
  return cap;
}
