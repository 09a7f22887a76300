#!/usr/bin/env bash
# Session 11, helper nvfp4 (issue 14), round 4 (only if the lead runs one more batch; budget 40 s; llama-3.1-8b).
# r3: nvfp4_gemv_k32 (same bits as nvfp4_gemv_mma) is not faster per GEMV at 2 blocks/SM (8B decoder linears 2.431 vs
# 2.135 ms) but equal at 3 blocks/SM (2.134 ms; qkv 8.3 vs 10.9 µs: one wave of 384 row tiles), so the k32 launches now
# take a persistent grid of 3 blocks/SM (NVFP4_K32_BLOCKS_PER_SM). Here:
#   time — per-GEMV timing on 8B shapes: mma (default) vs mma NV_U 2 capped at 80 registers (3 blocks/SM) vs k32 at 3/SM,
#          k32 NV_U 2 capped at 64 registers (4 blocks/SM)
#   e2e  — llama-3.1-8b synthetic NVFP4 batch 1: default (nvfp4_gemv_mma) vs nvfp4GemvK32 (k32 at 3 blocks/SM, o_proj's
#          act inside the GEMV), one process
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "timing 8B shapes"
LLMRT_NVFP4_MODELS=llama-3.1-8b LLMRT_NVFP4_VARIANTS=4p2z0,2p3z0b3,4p3k,2p4kb4 timeout 13 bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts \
  -t "device copy" > "$OUT/timing.log" 2>&1
echo "rc $?"
grep -E "copy|us \(|ms \(|rror" "$OUT/timing.log" | cut -c1-500 | head -12
left=$((39 - (SECONDS - _t0)))
stamp "e2e 8B: nvfp4GemvK32 off/on ($left s)"
timeout "$left" bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref --profile-decode \
  --ab nvfp4GemvK32 --ab-reps 1 > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\||^  |copy ceiling|nvfp4GemvK32|rror" "$OUT/e2e8b.log" | cut -c1-600 | head -30
stamp done
