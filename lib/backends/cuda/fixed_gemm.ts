/**
 * The fixed-order GEMM (kernels/fixed_gemm.cu) of batch-invariant linears whose shape has no M-stable cuBLASLt algorithm
 * (session 17, issue 16 item 5): `D = alpha · A · Bᵀ (+ beta · C) (+ bias)`, B stored [n, k], bf16 / fp16 in, f32 sums,
 * the input type or fp32 out. Each output element's K-reduction runs in the same order whatever M and whichever tile its
 * row lands in, so a row is the same bits in every batch. CublasLtGemm routes to it (`routeFixedGemm`); this file holds
 * the rule and the launcher.
 */
import type { CudaDevice } from "../../cuda/device.ts";
import type { CudaModule, Kernel } from "../../cuda/module.ts";
import type { Stream } from "../../cuda/stream.ts";
import { loadKernelFile } from "./compiler.ts";

/** Output tile of one block (kernels/fixed_gemm.cu FG_BM × FG_BN) and its threads. */
export const FIXED_GEMM_TILE = 64;
const THREADS = 128;

/** Input / output element types of a GEMM call (gemm.ts GemmDtype). */
type Dtype = "fp32" | "fp16" | "bf16" | "fp8e4m3";

/**
 * Whether the fixed-order kernel computes a GEMM of this kind: B stored [n, k], bf16 or fp16 inputs writing their own type
 * or fp32, K a multiple of 8 and every pointer 16-byte aligned (16-byte cp.async rows).
 */
export function fixedGemmSupports(dtype: Dtype, outDtype: Dtype, transB: boolean, k: number, align: number): boolean {
  return transB && (dtype === "bf16" || dtype === "fp16") && (outDtype === dtype || outDtype === "fp32") && k % 8 === 0 && align >= 16;
}

/**
 * The routing rule of a batch-invariant GEMM shape, decided once per shape (M-free) when its reference is pinned:
 * the fixed-order kernel when it is enabled, takes the call's kind, and cuBLASLt offered no reference whose rows round
 * alike at every probed M (`referenceStable` false: checked, none passed; null: no non-split-K candidate at all); a
 * shape whose reference was pinned unchecked (`undefined`: the first call came during a stream capture, or fp32)
 * keeps cuBLASLt, so eager steps and graph captures always take the same route.
 */
export function routeFixedGemm(enabled: boolean, supported: boolean, referenceStable: boolean | null | undefined): boolean {
  return enabled && supported && (referenceStable === false || referenceStable === null);
}

/** One fixed-order GEMM call (device addresses; 0n: no C / no bias). */
export interface FixedGemmCall {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly dtype: "bf16" | "fp16";
  readonly outDtype: "bf16" | "fp16" | "fp32";
  readonly a: bigint;
  readonly b: bigint;
  readonly d: bigint;
  readonly c: bigint;
  readonly bias: bigint;
  readonly alpha: number;
  readonly beta: number;
  readonly stream: Stream | null;
}

const PARAMS = ["ptr", "ptr", "ptr", "ptr", "ptr", "i32", "i32", "i32", "f32", "f32"] as const;

/** The loaded kernels (compiled by NVRTC on first use, cached on disk like the other kernels). */
export class FixedOrderGemm {
  readonly #module: CudaModule;
  readonly #kernels = new Map<string, Kernel>();

  constructor(device: CudaDevice) {
    this.#module = loadKernelFile(device, "fixed_gemm.cu");
  }

  /** Enqueues one GEMM on the call's stream. */
  launch(call: FixedGemmCall): void {
    const name = `fixed_gemm_${call.dtype === "bf16" ? "bf16" : "f16"}${call.outDtype === "fp32" ? "_f32" : ""}`;
    let kern = this.#kernels.get(name);
    if (!kern) {
      kern = this.#module.kernel(name, PARAMS);
      this.#kernels.set(name, kern);
    }
    const grid: [number, number] = [Math.ceil(call.n / FIXED_GEMM_TILE), Math.ceil(call.m / FIXED_GEMM_TILE)];
    kern.launch(grid, THREADS, [call.d, call.a, call.b, call.c, call.bias, call.m, call.n, call.k, call.alpha, call.beta], { stream: call.stream });
  }

  dispose(): void {
    this.#module.dispose();
  }
}
