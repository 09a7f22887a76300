/**
 * One checker per native library. Every return code goes through one of these; a non-success
 * code throws `CudaError` with the API name, the code and the library's own name for it.
 */
import { CudaError } from "./errors.ts";
import { CU_ERROR_NAMES, cuda } from "./cuda.ts";
import { nvrtc, NVRTC_ERROR_NAMES } from "./nvrtc.ts";
import { CUBLAS_STATUS_NAMES, cublasLt } from "./cublaslt.ts";
import { nccl, NCCL_RESULT_NAMES } from "./nccl.ts";
import { readCString } from "./runtime.ts";

const cuNames = new Map<number, string>();

/** The driver's name for a CUresult (`cuGetErrorName`), falling back to a built-in table. */
export function cuErrorName(code: number): string {
  const known = cuNames.get(code);
  if (known) return known;
  let name = CU_ERROR_NAMES[code] ?? `CUDA_ERROR_${code}`;
  if (cuda.isOpen) {
    const p = new BigUint64Array(1);
    if (cuda().cuGetErrorName(code, p) === 0 && p[0] !== 0n) name = readCString(p[0]);
  }
  cuNames.set(code, name);
  return name;
}

/** Throws `CudaError` unless `code` is CUDA_SUCCESS. */
export function checkCu(code: number, api: string, detail?: string): void {
  if (code !== 0) throw new CudaError("cuda", api, code, cuErrorName(code), detail);
}

/** NVRTC's name for an nvrtcResult (`nvrtcGetErrorString`). */
export function nvrtcErrorName(code: number): string {
  if (nvrtc.isOpen) {
    const s = readCString(nvrtc().nvrtcGetErrorString(code));
    if (s) return s;
  }
  return NVRTC_ERROR_NAMES[code] ?? `NVRTC_ERROR_${code}`;
}

/** Throws `CudaError` (library "nvrtc") unless `code` is NVRTC_SUCCESS; `log` is the compile log. */
export function checkNvrtc(code: number, api: string, detail?: string, log?: string): void {
  if (code !== 0) throw new CudaError("nvrtc", api, code, nvrtcErrorName(code), detail, log);
}

/** cuBLAS's name for a cublasStatus_t (`cublasLtGetStatusName`). */
export function cublasStatusName(code: number): string {
  if (cublasLt.isOpen) {
    const s = readCString(cublasLt().cublasLtGetStatusName(code));
    if (s) return s;
  }
  return CUBLAS_STATUS_NAMES[code] ?? `CUBLAS_STATUS_${code}`;
}

/** Throws `CudaError` (library "cublasLt") unless `code` is CUBLAS_STATUS_SUCCESS. */
export function checkCublas(code: number, api: string, detail?: string): void {
  if (code !== 0) throw new CudaError("cublasLt", api, code, cublasStatusName(code), detail);
}

/** NCCL's text for an ncclResult_t (`ncclGetErrorString`) after its enum name. */
export function ncclErrorName(code: number): string {
  const name = NCCL_RESULT_NAMES[code] ?? `ncclResult_${code}`;
  if (nccl.isOpen) {
    const s = readCString(nccl().ncclGetErrorString(code));
    if (s) return `${name}: ${s}`;
  }
  return name;
}

/** Throws `CudaError` (library "nccl") unless `code` is ncclSuccess. */
export function checkNccl(code: number, api: string, detail?: string): void {
  if (code !== 0) throw new CudaError("nccl", api, code, ncclErrorName(code), detail);
}

/**
 * Cleanup on a failure path: the native calls already ran and `codes` holds what each returned.
 * Every code is looked at: a failed cleanup is appended to `primary`'s message (the error being
 * thrown stays the first cause), so no return code is ever dropped unseen.
 */
export function noteCleanupFailures(primary: unknown, codes: readonly (readonly [library: "cuda" | "nvrtc" | "cublasLt", api: string, code: number])[]): void {
  const failed = codes.filter(([, , c]) => c !== 0);
  if (failed.length === 0 || !(primary instanceof Error)) return;
  const names = failed.map(([lib, api, c]) => `${api} → ${lib === "cuda" ? cuErrorName(c) : lib === "nvrtc" ? nvrtcErrorName(c) : cublasStatusName(c)}`);
  Object.defineProperty(primary, "message", {
    value: `${primary.message}\n(cleanup after this error also failed: ${names.join("; ")})`,
    configurable: true,
    writable: true,
  });
}
