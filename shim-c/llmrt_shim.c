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

#define LLMRT_SHIM_ABI 2
#define LLMRT_MAX_KERNEL_ARGS 64
#define LLMRT_CUDA_ERROR_INVALID_VALUE 1

typedef int (*llmrt_launch_kernel_fn)(void* f, llmrt_u32 gx, llmrt_u32 gy, llmrt_u32 gz, llmrt_u32 bx,
                                      llmrt_u32 by, llmrt_u32 bz, llmrt_u32 shared_mem, void* stream,
                                      void** kernel_params, void** extra);

/* cuLaunchKernelEx's config and attribute (cuda.h CUlaunchConfig / CUlaunchAttribute, CUDA >= 12.0). */
typedef struct {
  llmrt_u32 id;          /* CUlaunchAttributeID */
  llmrt_u32 pad;         /* pad[8 - sizeof(CUlaunchAttributeID)] */
  llmrt_u64 value[8];    /* CUlaunchAttributeValue: a 64-byte union (8-byte aligned) */
} llmrt_launch_attribute;
typedef struct {
  llmrt_u32 grid[3];
  llmrt_u32 block[3];
  llmrt_u32 shared_mem;
  void* stream;          /* at byte 32 */
  llmrt_launch_attribute* attrs;
  llmrt_u32 num_attrs;
} llmrt_launch_config;
typedef int (*llmrt_launch_kernel_ex_fn)(const llmrt_launch_config* config, void* f, void** kernel_params, void** extra);

#define LLMRT_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION 6
/* llmrt_launch_ex flags */
#define LLMRT_LAUNCH_PDL 1u

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

/* As llmrt_launch, through `launch_ex_fn` (cuLaunchKernelEx). flags & LLMRT_LAUNCH_PDL: programmatic
   dependent launch (Hopper+): the kernel may start before the previous kernel in the stream ends and
   must itself wait (griddepcontrol.wait) before reading that kernel's output. Returns the CUresult. */
int llmrt_launch_ex(llmrt_u64 launch_ex_fn, const unsigned char* packet, llmrt_u32 flags) {
  const llmrt_u64* head = (const llmrt_u64*)packet;
  const llmrt_u32* dims = (const llmrt_u32*)(packet + 16);
  const llmrt_u32 num_args = dims[7];
  const llmrt_u32* offsets = dims + 8;
  void* params[LLMRT_MAX_KERNEL_ARGS];
  llmrt_launch_attribute attr;
  llmrt_launch_config config;
  llmrt_u32 i;
  if (launch_ex_fn == 0 || num_args > LLMRT_MAX_KERNEL_ARGS) return LLMRT_CUDA_ERROR_INVALID_VALUE;
  for (i = 0; i < num_args; i++) params[i] = (void*)(packet + offsets[i]);
  for (i = 0; i < 8; i++) attr.value[i] = 0;
  attr.id = LLMRT_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
  attr.pad = 0;
  attr.value[0] = 1; /* int programmaticStreamSerializationAllowed = 1 (little-endian, at offset 0) */
  for (i = 0; i < 3; i++) {
    config.grid[i] = dims[i];
    config.block[i] = dims[3 + i];
  }
  config.shared_mem = dims[6];
  config.stream = (void*)head[1];
  config.attrs = (flags & LLMRT_LAUNCH_PDL) ? &attr : (llmrt_launch_attribute*)0;
  config.num_attrs = (flags & LLMRT_LAUNCH_PDL) ? 1u : 0u;
  return ((llmrt_launch_kernel_ex_fn)launch_ex_fn)(&config, (void*)head[0], params, (void**)0);
}
