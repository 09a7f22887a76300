/*
 * llmrt C shim: only what FFI cannot do cleanly.
 *
 * cuLaunchKernel wants `void** kernelParams`: an array of pointers, one per kernel argument, each
 * pointing at that argument's value. Building it from JavaScript means taking the address of every
 * slot on every launch; here JavaScript writes one packed buffer (the launch packet) and this
 * function turns it into the pointer array on the C stack and calls the driver.
 *
 * No #include: it must build with TinyCC (bun:ffi `cc`, no system headers) and with `cc -shared`.
 * The packet layout is mirrored by LaunchPacket in ffi/shim.ts; change both together and bump
 * LLMRT_SHIM_ABI.
 *
 * Launch packet (little-endian; offsets in bytes from the packet start):
 *    0  u64 function          CUfunction
 *    8  u64 stream            CUstream (0: the legacy default stream)
 *   16  u32 grid[3]
 *   28  u32 block[3]
 *   40  u32 shared_mem_bytes
 *   44  u32 num_args          <= LLMRT_MAX_KERNEL_ARGS
 *   48  u32 arg_offset[num_args]
 *  ...  argument values, each at arg_offset[i], aligned to its size
 */

typedef unsigned int llmrt_u32;
typedef unsigned long long llmrt_u64;

#define LLMRT_SHIM_ABI 1
#define LLMRT_MAX_KERNEL_ARGS 64
#define LLMRT_CUDA_ERROR_INVALID_VALUE 1

typedef int (*llmrt_launch_kernel_fn)(void* f, llmrt_u32 gx, llmrt_u32 gy, llmrt_u32 gz, llmrt_u32 bx,
                                      llmrt_u32 by, llmrt_u32 bz, llmrt_u32 shared_mem, void* stream,
                                      void** kernel_params, void** extra);

/* The packet layout version; JavaScript refuses a shim whose version differs. */
int llmrt_shim_abi(void) { return LLMRT_SHIM_ABI; }

/* Launches the kernel described by `packet` through `launch_fn` (the driver's cuLaunchKernel,
   from cuGetProcAddress). Returns the CUresult. */
int llmrt_launch(llmrt_u64 launch_fn, const unsigned char* packet) {
  const llmrt_u64* head = (const llmrt_u64*)packet;
  const llmrt_u32* dims = (const llmrt_u32*)(packet + 16);
  const llmrt_u32 num_args = dims[7];
  const llmrt_u32* offsets = dims + 8;
  void* params[LLMRT_MAX_KERNEL_ARGS];
  llmrt_u32 i;
  if (launch_fn == 0 || num_args > LLMRT_MAX_KERNEL_ARGS) return LLMRT_CUDA_ERROR_INVALID_VALUE;
  for (i = 0; i < num_args; i++) params[i] = (void*)(packet + offsets[i]);
  return ((llmrt_launch_kernel_fn)launch_fn)((void*)head[0], dims[0], dims[1], dims[2], dims[3], dims[4], dims[5],
                                             dims[6], (void*)head[1], params, (void**)0);
}
