#!/usr/bin/env bash
# Session 11, helper nvfp4 (issue 14), round 2 (budget 40 s; llama-3.1-8b): nvfp4GemvK32 (the m = 1 GEMV on m16n8k32 mmas).
#   e2e  — llama-3.1-8b synthetic NVFP4 batch 1, --ab nvfp4GemvK32 (k32 GEMVs, o_proj act inside; off/on in one process; bf16 r1: 227.7
#          tok/s = 80.4%), decode profiles (by kernel and by linear role)
#   test — tests/gpu/nvfp4_mma.test.ts correctness (act codes, dequant, GEMV m = 1/3/8 incl. k32 and k32_w16 vs the CPU,
#          persistent grids the same bits), then per-GEMV timing on 8B shapes if time is left: mma vs k32
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e 8B --ab nvfp4GemvK32"
timeout 27 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 48 --no-ref --profile-decode \
  --ab nvfp4GemvK32 --ab-reps 1 > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\||^  |copy ceiling|nvfp4GemvK32|rror" "$OUT/e2e8b.log" | cut -c1-700 | head -40
left=$((39 - (SECONDS - _t0)))
[ "$left" -gt 3 ] || { stamp "no time left"; exit 0; }
stamp "test nvfp4_mma.cu correctness + 8B timing ($left s)"
LLMRT_NVFP4_MODELS=llama-3.1-8b LLMRT_NVFP4_VARIANTS=4p2z0,4p2k,4p3k,8p2k timeout "$left" bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts \
  -t "within one bf16 ulp|persistent grid|device copy" > "$OUT/test.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail)$|k32|copy|us \(|ms \(|rror" "$OUT/test.log" | cut -c1-400 | head -30
stamp done
