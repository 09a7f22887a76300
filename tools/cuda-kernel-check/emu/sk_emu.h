// Extra shims for the CPU emulation of decode_attention_sk.cu (tools/cuda-kernel-check/decode_sk_emu.py),
// on top of cuda_emu.h.
#pragma once
#include "cuda_emu.h"
#include <atomic>
#define LLMRT_EMU 1
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
