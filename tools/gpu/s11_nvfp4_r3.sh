#!/usr/bin/env bash
# Session 11, helper nvfp4 (issue 14), round 3 (the last; budget 40 s; llama-3.1-8b, llama-3.2-1b). r2 ran the default
# batchInvariant session, where nvfp4GemvK32 was then not taken (off 303.9 / "on" 312.0 tok/s: noise, the same kernels). Now
# nvfp4_gemv_k32 adds the block terms in nvfp4_gemv_mma's order (the same bits: NV_K32_CHAIN), so it runs in every session:
#   e2e8b — llama-3.1-8b synthetic NVFP4 batch 1: nvfp4GemvK32 on, nvfp4K32Norm off / on (r2: the mma default 303.9 tok/s)
#   e2e1b — llama-3.2-1b: bf16, NVFP4 nvfp4GemvK32 off / on, then + nvfp4K32Norm (one process)
#   time  — per-GEMV timing on 8B shapes: mma (default, NV_ZC 0) vs k32 (chain) vs k32 without the chain
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e 8B: nvfp4GemvK32 on; nvfp4K32Norm off/on"
timeout 20 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref --profile-decode \
  --set nvfp4GemvK32=1 --ab nvfp4K32Norm --ab-reps 1 > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\||^  |copy ceiling|nvfp4K32Norm|rror" "$OUT/e2e8b.log" | cut -c1-600 | head -30
stamp "e2e 1B: bf16; NVFP4 nvfp4GemvK32 off/on, + nvfp4K32Norm"
timeout 11 bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-nvfp4 --decode 64 --no-ref --profile-decode \
  --ab nvfp4GemvK32 --ab-reps 1 --ab-then nvfp4K32Norm > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\||^  |copy ceiling|nvfp4GemvK32|rror" "$OUT/e2e1b.log" | cut -c1-600 | head -40
left=$((39 - (SECONDS - _t0)))
[ "$left" -gt 3 ] || { stamp "no time left"; exit 0; }
stamp "timing 8B shapes ($left s)"
LLMRT_NVFP4_MODELS=llama-3.1-8b LLMRT_NVFP4_VARIANTS=4p2z0,4p2k,4p2kc0,4p3k timeout "$left" bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts \
  -t "device copy" > "$OUT/timing.log" 2>&1
echo "rc $?"
grep -E "copy|us \(|ms \(|rror" "$OUT/timing.log" | cut -c1-500 | head -12
stamp done
