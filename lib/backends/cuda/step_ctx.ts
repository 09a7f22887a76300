/**
 * What the op planners of one step share (built once per step by planLaunches, launch_plan.ts): the step's
 * shape and row counts, buffer addresses (after last-layer pruning's remapping), the fused-decode plan, the
 * quantized-KV entry points and the launch list being built with its `k` appender (which adds programmatic
 * dependent launch where both kernels take it).
 */
import type { DecodeFusion } from "./decode_fusion.ts";
import type { Op } from "../../ir/network.ts";
import type { Launch, LaunchEnv, StepShape } from "./launch_types.ts";

/** Appends one kernel launch (op index, kernel name, grid, block, arguments, dynamic shared memory). */
export type KernelAppender = (
  op: number,
  kernel: string,
  grid: readonly [number, number, number],
  block: number,
  args: (bigint | number)[],
  sharedBytes?: number,
) => void;

export interface StepCtx {
  readonly env: LaunchEnv;
  readonly shape: StepShape;
  /** Token rows, sequences, logits rows of the step. */
  readonly T: number;
  readonly S: number;
  readonly R: number;
  /** cuBLASLt element type of the engine's activations. */
  readonly gemmType: "bf16" | "fp32";
  /** Device address of an activation (a pruned step's last-layer rows remapped to their gathered copies). */
  readonly buf: (name: string) => bigint;
  /** Rows an activation holds in this step. */
  readonly rowsOf: (name: string) => number;
  /** The KV cache of layer `l`. */
  readonly kvLayer: (l: number) => bigint;
  /** A quantized KV cache: layer `l`'s scales; `kvTag` names its entry points (fp8kv_ / int8kv_). */
  readonly kvFp8: boolean;
  readonly kvTag: string;
  readonly kvScalesOf: (l: number) => bigint;
  /** Fused decode plan (decode steps of up to 8 sequences), or undefined. */
  readonly fuse: DecodeFusion | undefined;
  /** Fused decode steps take programmatic dependent launch. */
  readonly pdl: boolean;
  /** FP8 linears whose producer already wrote their e4m3 rows. */
  readonly preQuantized: ReadonlySet<number>;
  /** Whether the ops planned now run over the logits rows only (last-layer pruning, past its cut). */
  readonly pruned: () => boolean;
  readonly out: Launch[];
  readonly k: KernelAppender;
}

/** One linear op as its format's planner sees it (fp8_launch.ts, lowbit_launch.ts, quant_launch.ts, quant_gemm_plan.ts). */
export interface LinearStep {
  readonly op: Extract<Op, { type: "linear" }>;
  /** The op's index in the plan. */
  readonly i: number;
  /** Activation rows of the linear in this step. */
  readonly rows: number;
  /** The linear writes the fp32 logits. */
  readonly isLogits: boolean;
  readonly env: LaunchEnv;
  /** Every sequence of the step brings one token. */
  readonly decodeStep: boolean;
  /** Device address of an activation. */
  readonly buf: (name: string) => bigint;
}
