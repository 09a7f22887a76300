/**
 * Options of a runtime `Session`, one zod schema: the backend, the device, and the CUDA session's on/off switches
 * (their list, defaults and documentation: lib/backends/cuda/session_flags.ts `CUDA_FLAGS`). Environment
 * variables are only documented defaults, read here and nowhere else in the library: each switch's variable set to
 * "0" turns it off and "1" turns it on when the option is not given, e.g. `LLMRT_CUDA_GRAPHS=0` (graphs off),
 * `LLMRT_PDL=0`, `LLMRT_BATCH_INVARIANT=0`, `LLMRT_BATCH_ATTENTION2=0`, `LLMRT_GEMV_KS=0`, `LLMRT_DECODE_SK=1`,
 * `LLMRT_WGMMA_PREFILL=1`, `LLMRT_FP8_GEMV1=1`.
 */
import { z } from "zod";
import { CUDA_FLAG_NAMES, CUDA_FLAGS, type CudaFlagInput, type CudaFlagName, type CudaFlags, resolveCudaFlags } from "../backends/cuda/session_flags.ts";
import { parseWith } from "../util/validate.ts";

const env = (): Record<string, string | undefined> => (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};

/** A switch's environment variable as a default: "0" off, "1" on, anything else (or unset) leaves it to the table. */
function envFlag(name: CudaFlagName): boolean | undefined {
  const v = env()[CUDA_FLAGS[name].env];
  return v === "0" ? false : v === "1" ? true : undefined;
}

const flagFields = Object.fromEntries(CUDA_FLAG_NAMES.map((k) => [k, z.boolean().optional()])) as { [K in CudaFlagName]: z.ZodOptional<z.ZodBoolean> };

export const SessionOptionsSchema = z.strictObject({
  /** Backend to run on. @default "cpu" */
  backend: z.enum(["cpu", "cuda"]).default("cpu"),
  /** CUDA: device ordinal. @default 0 */
  device: z.number().int().nonnegative().default(0),
  ...flagFields,
});

/** What `Session` takes: `backend`, `device`, and any CUDA switch of `CUDA_FLAGS` (each documented there). */
export type SessionOptions = { backend?: "cpu" | "cuda"; device?: number } & CudaFlagInput;
export type ResolvedSessionOptions = Readonly<{ backend: "cpu" | "cuda"; device: number }> & CudaFlags;

/** Validates session options and applies the documented defaults (errors name the field and value). */
export function parseSessionOptions(input: SessionOptions = {}): ResolvedSessionOptions {
  const o = parseWith(SessionOptionsSchema, input, "SessionOptions");
  return Object.freeze({ backend: o.backend, device: o.device, ...resolveCudaFlags(o, envFlag) });
}
