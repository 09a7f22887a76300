// Zero-copy step staging (session option `zeroCopyStaging`): a step's inputs read by a kernel straight from the
// pinned host staging slot (mapped: under unified addressing the host address is the device address), and its
// sampled ids written back into it, instead of host <-> device copies on the copy engine around the step.
//
// extern "C" __global__ void stage_in(const unsigned* host, unsigned* dev, int from, int end, const int* fwd,
//                                     int tokOff, int tokCap, int numTokens, const int* sampled)
//   dev[w] = host[w] for w in [from, end) but the token ids and positions (words [tokOff, tokOff + tokCap) and
//   [tokOff + tokCap, tokOff + 2 tokCap)): only their first numTokens words, and there
//   dev[tokOff + t] = fwd && fwd[t] >= 0 ? sampled[fwd[t]] : host[tokOff + t]
//   (fwd: the host's forwarded rows, one int a token, or null; sampled: the previous step's sampled ids on the device)
//   grid (ceil((end - from) / 256), 1, 1)   block (256, 1, 1)   shared 0
// extern "C" __global__ void stage_out(const int* sampled, int* host, int rows)
//   host[r] = sampled[r] for r < rows   grid (ceil(rows / 256), 1, 1)   block (256, 1, 1)   shared 0
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256) stage_in(const u32* host, u32* dev, int from, int end, const int* fwd,
                                                             int tokOff, int tokCap, int numTokens, const int* sampled) {
  const int w = from + (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (w >= end) return;
  const int t = w - tokOff;
  if (t >= 0 && t < 2 * tokCap && t % tokCap >= numTokens) return;  // past the step's tokens: not read
  if (t >= 0 && t < numTokens && fwd != nullptr) {
    const int r = fwd[t];
    dev[w] = r >= 0 ? (u32)sampled[r] : host[w];
  } else {
    dev[w] = host[w];
  }
}

extern "C" __global__ void __launch_bounds__(256) stage_out(const int* sampled, int* host, int rows) {
  const int r = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (r < rows) host[r] = sampled[r];
}
