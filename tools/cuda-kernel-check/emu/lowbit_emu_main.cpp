// Driver of the CPU emulation of kernels/lowbit.cu (tools/cuda-kernel-check/lowbit_emu.ts writes the inputs and
// checks the outputs): one linear's activation quantizer (row-major and in the GEMV's order), weight dequantizer
// and decode GEMV, run through emu_launch.
// Usage: lowbit_emu DIR FMT N K M ACT_SCALE ALPHA   (FMT int8 | int4 | nvfp4; DIR holds x.bin w.bin s.bin pre.bin bias.bin)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "cuda_emu.h"

typedef uint64_t U;
extern "C" int emu_launch(void* fn, const U* iv, const float* fv, int gx, int gy, int gz, int bx, int by, int bz);
#define K_(name) extern "C" void name();
K_(lowbit_act_int8_bf16) K_(lowbit_act_e4m3_bf16) K_(lowbit_act_nvfp4_bf16)
K_(lowbit_dequant_int8_bf16) K_(lowbit_dequant_int4_bf16) K_(lowbit_dequant_nvfp4_bf16)
K_(lowbit_gemv_int8_bf16_m1) K_(lowbit_gemv_int8_bf16_m2) K_(lowbit_gemv_int8_bf16_m4) K_(lowbit_gemv_int8_bf16_m8)
K_(lowbit_gemv_int4_bf16_m1) K_(lowbit_gemv_int4_bf16_m2) K_(lowbit_gemv_int4_bf16_m4) K_(lowbit_gemv_int4_bf16_m8)
K_(lowbit_gemv_nvfp4_bf16_m1) K_(lowbit_gemv_nvfp4_bf16_m2) K_(lowbit_gemv_nvfp4_bf16_m4) K_(lowbit_gemv_nvfp4_bf16_m8)

static std::vector<unsigned char> readAll(const std::string& p) {
  FILE* f = fopen(p.c_str(), "rb");
  if (!f) { fprintf(stderr, "no %s\n", p.c_str()); exit(1); }
  std::vector<unsigned char> b;
  unsigned char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) b.insert(b.end(), buf, buf + n);
  fclose(f);
  return b;
}
static void writeAll(const std::string& p, const void* d, size_t n) {
  FILE* f = fopen(p.c_str(), "wb");
  fwrite(d, 1, n, f);
  fclose(f);
}
template <class T> static U P(T* p) { return (U)(uintptr_t)p; }

int main(int argc, char** argv) {
  if (argc < 8) { fprintf(stderr, "usage: lowbit_emu DIR FMT N K M ACT_SCALE ALPHA\n"); return 2; }
  const std::string dir = argv[1], fmt = argv[2];
  const int N = atoi(argv[3]), K = atoi(argv[4]), M = atoi(argv[5]);
  const float a = (float)atof(argv[6]), alpha = (float)atof(argv[7]);
  auto x = readAll(dir + "/x.bin"), w = readAll(dir + "/w.bin"), s = readAll(dir + "/s.bin"), pre = readAll(dir + "/pre.bin"),
       bias = readAll(dir + "/bias.bin");
  std::vector<unsigned short> xq(M * K), xs(M * K), dq((size_t)N * K), y(M * N);
  std::vector<float> rs(8);
  const int group = fmt == "int4" ? 64 : fmt == "nvfp4" ? 16 : K;
  void* act = fmt == "int8" ? (void*)lowbit_act_int8_bf16 : fmt == "int4" ? (void*)lowbit_act_e4m3_bf16 : (void*)lowbit_act_nvfp4_bf16;
  float fv[8] = {0};
  for (int swz = 0; swz < 2; swz++) {
    U iv[20] = {0};
    unsigned short* out = swz ? xs.data() : xq.data();
    if (fmt == "int8") {
      U v[] = {P(x.data()), P(pre.data()), P(out), P(rs.data()), (U)M, (U)K, (U)swz};
      std::copy(v, v + 7, iv);
    } else {
      U v[] = {P(x.data()), P(out), (U)M, (U)K, (U)swz};
      std::copy(v, v + 5, iv);
      fv[0] = a;
    }
    emu_launch(act, iv, fv, M, 1, 1, 256, 1, 1);
  }
  {
    void* fn = fmt == "int8" ? (void*)lowbit_dequant_int8_bf16 : fmt == "int4" ? (void*)lowbit_dequant_int4_bf16 : (void*)lowbit_dequant_nvfp4_bf16;
    U iv[20] = {P(w.data()), P(s.data()), P(dq.data()), (U)N, (U)K, (U)group};
    float z[8] = {0};
    emu_launch(fn, iv, z, (int)(((size_t)N * K / 8 + 255) / 256), 1, 1, 256, 1, 1);
  }
  {
    const int Mb = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8;
    void* const tbl[3][4] = {
        {(void*)lowbit_gemv_int8_bf16_m1, (void*)lowbit_gemv_int8_bf16_m2, (void*)lowbit_gemv_int8_bf16_m4, (void*)lowbit_gemv_int8_bf16_m8},
        {(void*)lowbit_gemv_int4_bf16_m1, (void*)lowbit_gemv_int4_bf16_m2, (void*)lowbit_gemv_int4_bf16_m4, (void*)lowbit_gemv_int4_bf16_m8},
        {(void*)lowbit_gemv_nvfp4_bf16_m1, (void*)lowbit_gemv_nvfp4_bf16_m2, (void*)lowbit_gemv_nvfp4_bf16_m4, (void*)lowbit_gemv_nvfp4_bf16_m8}};
    const int fi = fmt == "int8" ? 0 : fmt == "int4" ? 1 : 2, mi = Mb == 1 ? 0 : Mb == 2 ? 1 : Mb == 4 ? 2 : 3;
    U iv[20] = {P(xs.data()), P(w.data()), P(s.data()), P(rs.data()), P(bias.data()), P(y.data()), (U)M, (U)N, (U)K, (U)group};
    float f2[8] = {alpha};
    emu_launch(tbl[fi][mi], iv, f2, (N + 7) / 8, 1, 1, 256, 1, 1);
  }
  writeAll(dir + "/act0.bin", xq.data(), xq.size() * 2);
  writeAll(dir + "/act1.bin", xs.data(), xs.size() * 2);
  writeAll(dir + "/rs.bin", rs.data(), M * 4);
  writeAll(dir + "/dq.bin", dq.data(), dq.size() * 2);
  writeAll(dir + "/y.bin", y.data(), y.size() * 2);
  return 0;
}
