// Kernels that exercise the runtime itself (launch, graphs, NVRTC), used by tests/gpu and
// bench/ffi.bench.ts. No headers: NVRTC compiles them without a CUDA toolkit include folder.

// The cheapest launch: measures launch and graph overhead.
extern "C" __global__ void llmrt_empty() {}

// y[i] = a * x[i] + y[i]                    x, y: [n] f32
extern "C" __global__ void llmrt_saxpy(float* __restrict__ y, const float* __restrict__ x, float a, unsigned int n) {
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

// y[i] += 1                                  y: [n] f32 (graph replay counts in y)
extern "C" __global__ void llmrt_add_one(float* __restrict__ y, unsigned int n) {
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] += 1.0f;
}

// out[r] = sum_c x[r, c]^2 in f32            x: [rows, cols] f32, out: [rows] f32
// One block per row; blockDim.x must be a power of two <= 1024; dynamic shared memory of
// blockDim.x floats.
extern "C" __global__ void llmrt_row_sumsq(const float* __restrict__ x, float* __restrict__ out, unsigned int rows,
                                           unsigned int cols) {
  extern __shared__ float partial[];
  const unsigned int r = blockIdx.x;
  if (r >= rows) return;
  const float* row = x + (size_t)r * cols;
  float acc = 0.0f;
  for (unsigned int c = threadIdx.x; c < cols; c += blockDim.x) acc += row[c] * row[c];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[r] = partial[0];
}

// Every argument kind the launch packet carries, written back so a test can check the packing:
// out[0..5] = { i32, u32 (as float), f32, f64 (as float), i64 (as float), u64 (as float) }.
extern "C" __global__ void llmrt_echo_args(float* __restrict__ out, int a, unsigned int b, float c, double d, long long e,
                                           unsigned long long f) {
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    out[0] = (float)a;
    out[1] = (float)b;
    out[2] = c;
    out[3] = (float)d;
    out[4] = (float)e;
    out[5] = (float)f;
  }
}

// Programmatic dependent launch (tests/gpu/pdl.test.ts): y[i] += 1, read and written only after
// griddepcontrol.wait, with a ~`spin`-cycle pause between the read and the write, then the dependents'
// trigger. Launched with PDL in a chain, every launch must still see the previous one's sum.
// `llmrt_pdl_nowait` triggers first and never waits: in a PDL chain its read may overtake the previous
// launch's write (the control that shows the launches really overlap).
__device__ __forceinline__ void llmrtSpin(long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}
extern "C" __global__ void llmrt_pdl_add_one(float* __restrict__ y, unsigned int n, long long spin) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float v = y[i];
  llmrtSpin(spin);
  y[i] = v + 1.0f;
}
extern "C" __global__ void llmrt_pdl_nowait(float* __restrict__ y, unsigned int n, long long spin) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float v = y[i];
  llmrtSpin(spin);
  y[i] = v + 1.0f;
}
