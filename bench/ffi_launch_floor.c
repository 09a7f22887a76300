/*
 * C reference for bench/ffi.bench.ts: the same driver calls straight from C (no FFI, no JS), on
 * the same CUBIN, so the FFI overhead is the difference.
 *   cc -O2 -I/usr/local/cuda/include bench/ffi_launch_floor.c -o /tmp/launch_floor -lcuda
 *   /tmp/launch_floor $LLMRT_CACHE_DIR/cubin/runtime_test.cu-sm_90-*.cubin
 * Prints one JSON object (nanoseconds / microseconds).
 */
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHECK(x)                                              \
  do {                                                        \
    CUresult r_ = (x);                                        \
    if (r_ != CUDA_SUCCESS) {                                 \
      const char* s_ = "?";                                   \
      cuGetErrorName(r_, &s_);                                \
      fprintf(stderr, "%s failed: %s (%d)\n", #x, s_, r_);    \
      return 1;                                               \
    }                                                         \
  } while (0)

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s kernels.cubin\n", argv[0]);
    return 2;
  }
  FILE* f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 2;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* image = malloc(size);
  if (fread(image, 1, size, f) != (size_t)size) return 2;
  fclose(f);

  CUdevice dev;
  CUcontext ctx;
  CUmodule mod;
  CUfunction empty;
  CUstream s;
  CHECK(cuInit(0));
  CHECK(cuDeviceGet(&dev, 0));
  CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
  CHECK(cuCtxSetCurrent(ctx));
  CHECK(cuModuleLoadData(&mod, image));
  CHECK(cuModuleGetFunction(&empty, mod, "llmrt_empty"));
  CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));

  // cuStreamQuery on an idle stream.
  CHECK(cuStreamSynchronize(s));
  double t0 = now_ns();
  for (int i = 0; i < 100000; i++) cuStreamQuery(s);
  double query_ns = (now_ns() - t0) / 100000;

  // Host cost per launch: bursts of 100 (the queue never fills), best of 50.
  for (int i = 0; i < 1000; i++) CHECK(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL));
  CHECK(cuStreamSynchronize(s));
  double best_launch = 1e30;
  for (int rep = 0; rep < 50; rep++) {
    t0 = now_ns();
    for (int i = 0; i < 100; i++) CHECK(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL));
    double per = (now_ns() - t0) / 100;
    if (per < best_launch) best_launch = per;
    CHECK(cuStreamSynchronize(s));
  }

  // 100 launches + sync, and the same 100 as one graph + sync (mean of 1000).
  t0 = now_ns();
  for (int rep = 0; rep < 1000; rep++) {
    for (int i = 0; i < 100; i++) CHECK(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL));
    CHECK(cuStreamSynchronize(s));
  }
  double launches_us = (now_ns() - t0) / 1000 / 1e3;
  CUgraph g;
  CUgraphExec ge;
  CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  for (int i = 0; i < 100; i++) CHECK(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL));
  CHECK(cuStreamEndCapture(s, &g));
  CHECK(cuGraphInstantiate(&ge, g, 0));
  CHECK(cuGraphUpload(ge, s));
  for (int i = 0; i < 10; i++) CHECK(cuGraphLaunch(ge, s));
  CHECK(cuStreamSynchronize(s));
  t0 = now_ns();
  for (int rep = 0; rep < 1000; rep++) {
    CHECK(cuGraphLaunch(ge, s));
    CHECK(cuStreamSynchronize(s));
  }
  double graph_us = (now_ns() - t0) / 1000 / 1e3;

  printf("{\"cuStreamQueryNs\": %.1f, \"cuLaunchKernelHostNs\": %.1f, \"launches100PlusSyncUs\": %.1f, \"graph100PlusSyncUs\": %.1f}\n",
         query_ns, best_launch, launches_us, graph_us);
  cuGraphExecDestroy(ge);
  cuGraphDestroy(g);
  cuStreamDestroy(s);
  cuModuleUnload(mod);
  cuDevicePrimaryCtxRelease(dev);
  return 0;
}
