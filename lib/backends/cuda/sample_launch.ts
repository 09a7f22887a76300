/**
 * The sampler's launches of a step (launch_plan.ts planLaunches' sample op, and the CUDA session's masked sampling):
 * apply_token_mask, then sample_f32. Pure data, no FFI.
 */
import { InternalError } from "../../util/errors.ts";
import type { Launch, LaunchEnv } from "./launch_types.ts";

const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/**
 * The sampler's launches over `numRows` logits rows: with `masked`, first the token masks
 * (apply_token_mask: a row's ids whose bit is 0 in its mask → -inf), then sample_f32.
 */
export function sampleLaunches(env: LaunchEnv, numRows: number, masked: boolean): Launch[] {
  const a = env.plan.attributes, io = env.io, R = numRows;
  const op = env.plan.ops.findIndex((o) => o.type === "sample");
  const out: Launch[] = [];
  if (masked) {
    if (!env.tokenMasks) throw new InternalError("launch plan: a masked sample without a token-mask buffer");
    out.push({
      kind: "kernel",
      op,
      kernel: "apply_token_mask",
      grid: [cdiv(a.vocabSize, 256), R, 1],
      block: 256,
      args: [env.logits, a.vocabSize, env.tokenMasks, cdiv(a.vocabSize, 32), io.maskIndex],
    });
  }
  out.push({
    kind: "kernel",
    op,
    kernel: "sample_f32",
    grid: [R, 1, 1],
    block: 512,
    args: [env.logits, a.vocabSize, io.temperature, io.topK, io.topP, io.minP, io.seed, io.step, io.sampledIds],
  });
  return out;
}
