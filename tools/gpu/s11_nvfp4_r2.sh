#!/usr/bin/env bash
# Session 11, helper nvfp4 (issue 14), round 2 (budget 40 s; llama-3.1-8b). r1: 8B bf16 227.7 tok/s = 80.4% of its bytes;
# the 8B NVFP4 run was cut short. Here:
#   e2e  — llama-3.1-8b synthetic NVFP4 batch 1 in one process: nvfp4GemvK32 off / on (m16n8k32 GEMVs, o_proj's act inside
#          the GEMV), then + nvfp4K32Norm (norms in the next GEMV's prologue, residual adds in the GEMV before); profiles
#   test — tests/gpu/nvfp4_mma.test.ts correctness (GEMV m = 1/3/8 incl. k32 vs the CPU; k32_act / k32_norm / k32_add
#          the bits of the act / producer + k32; persistent grids), then per-GEMV timing on 8B shapes if time is left
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e 8B: nvfp4GemvK32 off/on, then + nvfp4K32Norm"
timeout 29 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref --profile-decode \
  --ab nvfp4GemvK32 --ab-reps 1 --ab-then nvfp4K32Norm > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\||^  |copy ceiling|nvfp4GemvK32|rror" "$OUT/e2e8b.log" | cut -c1-700 | head -40
left=$((39 - (SECONDS - _t0)))
[ "$left" -gt 3 ] || { stamp "no time left"; exit 0; }
stamp "test nvfp4_mma.cu correctness + 8B timing ($left s)"
LLMRT_NVFP4_MODELS=llama-3.1-8b LLMRT_NVFP4_VARIANTS=4p2z0,4p2k,4p3k,8p2k timeout "$left" bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts \
  -t "within one bf16 ulp|persistent grid|device copy" > "$OUT/test.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail)$|k32|copy|us \(|ms \(|rror" "$OUT/test.log" | cut -c1-300 | head -40
stamp done
