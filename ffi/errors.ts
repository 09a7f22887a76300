/**
 * Error classes of the native layer. Every native return code goes through one checker per
 * library (ffi/check.ts) which throws `CudaError`; a library that cannot be opened, or a shim that
 * cannot be compiled, throws `NativeLibraryError`.
 */

import { LlmrtError, registerErrorReviver } from "../lib/util/errors.ts";

/** Which native library produced a status code. */
export type NativeLibraryName = "cuda" | "nvrtc" | "cublasLt" | "nccl";

/**
 * A non-success status from the CUDA driver, NVRTC or cuBLASLt: carries the library, the API that
 * returned it, the numeric code and the library's own name for it (`CUDA_ERROR_OUT_OF_MEMORY`,
 * `NVRTC_ERROR_COMPILATION`, `CUBLAS_STATUS_NOT_SUPPORTED`). `log` holds an NVRTC compile log.
 *
 * @example
 * ```ts
 * try { device.alloc(1e15); } catch (e) {
 *   if (e instanceof CudaError && e.codeName === "CUDA_ERROR_OUT_OF_MEMORY") console.log("too big");
 * }
 * ```
 */
export class CudaError extends LlmrtError {
  override name = "CudaError";
  constructor(
    readonly library: NativeLibraryName,
    readonly api: string,
    readonly code: number,
    readonly codeName: string,
    readonly detail?: string,
    readonly log?: string,
  ) {
    super(
      "cuda",
      `${api} failed: ${codeName} (${library} status ${code})${detail ? `: ${detail}` : ""}${log ? `\n${log}` : ""}`,
      { data: { library, api, code, codeName, ...(detail ? { detail } : {}), ...(log ? { log } : {}) } },
    );
  }
}

/** One attempt at opening a native library: the path or name given to dlopen and why it failed. */
export interface LoadAttempt {
  readonly path: string;
  readonly reason: string;
}

/**
 * A native library (libcuda, libnvrtc, libcublasLt) that could not be opened, or the C shim that
 * could not be compiled. The message lists every path tried and the environment variable that
 * overrides the search.
 *
 * @example
 * ```ts
 * try { cuda(); } catch (e) { if (e instanceof NativeLibraryError) console.log(e.envVar, e.attempts); }
 * ```
 */
export class NativeLibraryError extends LlmrtError {
  override name = "NativeLibraryError";
  constructor(
    readonly library: string,
    readonly envVar: string,
    readonly attempts: readonly LoadAttempt[],
    summary?: string,
    hint?: string,
  ) {
    const tried = attempts.map((a) => `  - ${a.path}: ${a.reason}`).join("\n");
    super(
      "native_library",
      `${summary ?? `cannot load ${library}`}. Tried:\n${tried}\n` +
        (hint ?? `Set ${envVar} to the full path of the library to override the search.`),
      { data: { library, envVar, attempts: attempts.map((a) => ({ path: a.path, reason: a.reason })) } },
    );
  }
}

registerErrorReviver("CudaError", (s) => {
  const d = s.data ?? {};
  const e = new CudaError(
    String(d.library ?? "cuda") as NativeLibraryName,
    String(d.api ?? "?"),
    Number(d.code ?? -1),
    String(d.codeName ?? "?"),
    d.detail === undefined ? undefined : String(d.detail),
    d.log === undefined ? undefined : String(d.log),
  );
  return e;
});
registerErrorReviver("NativeLibraryError", (s) => {
  const d = s.data ?? {};
  const e = new NativeLibraryError(String(d.library ?? "?"), String(d.envVar ?? "?"), (d.attempts ?? []) as LoadAttempt[]);
  Object.defineProperty(e, "message", { value: s.message });
  return e;
});
