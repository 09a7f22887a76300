/**
 * The kernels a CUDA session's launch plans can use (issue 16, first-run compile): every step shape
 * the session runs — prefill and mixed steps, chunks without logits rows, decode steps eager and in
 * graph buckets, with and without sampling, masked sampling — goes through planLaunches / sampleLaunches, and the kernel names
 * those launches hold are the set to compile up front. Pure: no FFI, checked on the fake device.
 */
import type { AttentionChoice, LaunchEnv, StepShape } from "./launch_types.ts";
import { NCCL_ALL_REDUCE } from "./launch_types.ts";
import { hasTiledAttention } from "./attention_choice.ts";
import { planLaunches, sampleLaunches } from "./launch_plan.ts";

/**
 * Token, sequence and row counts that reach every branch of planLaunches: the skinny-GEMM
 * instantiations pick by rows (1, 2, ≤ 4, ≤ 8), cuBLASLt above 8; decode attention up to decodeCap.
 */
function counts(limit: number, extra: readonly number[]): number[] {
  return [...new Set([1, 2, 3, 5, 9, ...extra])].filter((n) => n >= 1 && n <= limit).sort((a, b) => a - b);
}

/**
 * Names of every kernel the launch plans of a session with launch environment `env` (addresses are
 * not read) can launch, sorted; `decodeCap` is the session's largest split-K decode step (the decode
 * graphs' largest bucket). The NCCL all-reduce pseudo-launch is left out.
 *
 * @example
 * ```ts
 * const names = plannedKernels(session.launchEnv(kv), session.decodeCap);
 * ```
 */
export function plannedKernels(env: LaunchEnv, decodeCap: number): string[] {
  const plan = env.plan;
  const tiled = hasTiledAttention(plan.attributes.headDim) && plan.ops.some((o) => o.type === "paged_attention");
  const names = new Set<string>();
  const add = (shape: StepShape): void => {
    let launches;
    try {
      launches = planLaunches(env, shape);
    } catch {
      return; // a shape this plan never runs; a kernel missed here still compiles on first use
    }
    for (const l of launches) if (l.kind === "kernel" && l.kernel !== NCCL_ALL_REDUCE) names.add(l.kernel);
  };
  // Split-K decode with and without the reduce launch (one split or several).
  const decodeChoices: AttentionChoice[] = [
    { kind: "decode", numSplits: 1, splitSize: 64 },
    { kind: "decode", numSplits: 2, splitSize: 64 },
    // decode_attention_sk (env.decodeSplitK): its own geometry rides along.
    ...(env.decodeSplitK ? [{ kind: "decode" as const, numSplits: 2, splitSize: 64, sk: { numSplits: 2, target: 2 } }] : []),
  ];
  // Sampling only adds the sample launch, so every shape samples when it has rows.
  for (const T of counts(plan.maxTokens, [decodeCap, decodeCap + 1, plan.maxTokens])) {
    // One sequence (a prompt or a chunk) or one token per sequence (decode, and T === S prefill past decodeCap).
    for (const S of [...new Set([1, T])].filter((s) => s <= plan.maxSeqs)) {
      const decode = T === S && T <= decodeCap;
      const choices: AttentionChoice[] = !tiled ? [{ kind: "generic" }] : decode ? decodeChoices : [{ kind: "prefill" }];
      // Logits rows: none (a prefill chunk that does not end its prompt), some, one per sequence or per token.
      for (const R of [...new Set([0, 1, S, T])].filter((r) => r <= plan.maxSeqs)) {
        for (const attention of choices) add({ numTokens: T, numSeqs: S, numRows: R, attention, sample: R > 0 });
      }
    }
  }
  // Guided decoding: a step with token masks samples after the forward (apply_token_mask, then the sampler).
  try {
    for (const l of sampleLaunches({ ...env, tokenMasks: env.tokenMasks || 1n }, 1, true)) if (l.kind === "kernel") names.add(l.kernel);
  } catch {
    // as above
  }
  return [...names].sort();
}
