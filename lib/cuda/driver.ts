/**
 * Process-wide facts of the CUDA driver that every CUDA class needs: one `cuInit`, the driver
 * version, the current-context binding, and cuLaunchKernel's address for the C shim. The driver
 * itself holds this state per process / per thread; this file only mirrors it.
 */
import { checkCu } from "../../ffi/check.ts";
import { CU, cuda } from "../../ffi/cuda.ts";
import { cString, out } from "../../ffi/runtime.ts";
import { CudaError } from "../../ffi/errors.ts";

let initialized = false;
let cachedDriverVersion = 0;
let launchFn = 0n;
let launchExFn: bigint | null = null;
let boundContext = 0n;

/** Calls `cuInit(0)` once per process (opens libcuda on first use). */
export function ensureCudaInit(): void {
  if (initialized) return;
  checkCu(cuda().cuInit(0), "cuInit");
  initialized = true;
}

/** The driver's CUDA version, e.g. 13000 for CUDA 13.0. */
export function driverVersion(): number {
  if (cachedDriverVersion) return cachedDriverVersion;
  checkCu(cuda().cuDriverGetVersion(out.i32), "cuDriverGetVersion");
  return (cachedDriverVersion = out.i32[0]);
}

/** Number of CUDA devices (0 when the driver reports CUDA_ERROR_NO_DEVICE). */
export function deviceCount(): number {
  const lib = cuda();
  const init = lib.cuInit(0);
  if (init === CU.ERROR_NO_DEVICE) return 0;
  checkCu(init, "cuInit");
  initialized = true;
  checkCu(lib.cuDeviceGetCount(out.i32), "cuDeviceGetCount");
  return out.i32[0];
}

/**
 * Makes `ctx` the calling thread's current context. JS runs on one thread and every switch goes
 * through here, so a repeated bind of the same context costs a comparison, not a driver call.
 */
export function bindContext(ctx: bigint): void {
  if (boundContext === ctx) return;
  checkCu(cuda().cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
  boundContext = ctx;
}

/** Forgets a context that was released, so the next bind really sets it. */
export function forgetContext(ctx: bigint): void {
  if (boundContext === ctx) boundContext = 0n;
}

/** cuLaunchKernel's address (`cuGetProcAddress`), which the shim calls through. */
export function launchKernelAddress(): bigint {
  if (launchFn) return launchFn;
  ensureCudaInit();
  const name = cString("cuLaunchKernel");
  const status = new Int32Array(1);
  const fn = new BigUint64Array(1);
  checkCu(cuda().cuGetProcAddress_v2(name, fn, driverVersion(), CU.GET_PROC_ADDRESS_DEFAULT, status), "cuGetProcAddress", "cuLaunchKernel");
  if (fn[0] === 0n) {
    throw new CudaError("cuda", "cuGetProcAddress", status[0], "NULL_PROC", `cuGetProcAddress("cuLaunchKernel") returned NULL (symbol status ${status[0]})`);
  }
  return (launchFn = fn[0]);
}

/**
 * cuLaunchKernelEx's address (`cuGetProcAddress`), which the shim calls for launches with attributes
 * (programmatic dependent launch); 0n when the driver has no such entry point (CUDA < 12.0).
 */
export function launchKernelExAddress(): bigint {
  if (launchExFn !== null) return launchExFn;
  ensureCudaInit();
  const status = new Int32Array(1);
  const fn = new BigUint64Array(1);
  const code = cuda().cuGetProcAddress_v2(cString("cuLaunchKernelEx"), fn, driverVersion(), CU.GET_PROC_ADDRESS_DEFAULT, status);
  if (code === CU.ERROR_NOT_FOUND) return (launchExFn = 0n);
  checkCu(code, "cuGetProcAddress", "cuLaunchKernelEx");
  return (launchExFn = fn[0]);
}
