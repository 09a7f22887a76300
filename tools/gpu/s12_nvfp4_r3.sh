#!/usr/bin/env bash
# Session 12, helper nvfp4 (issue 14), round 3 (the last; budget 45 s; llama-3.1-8b, llama-3.2-1b). r2: nvfp4NormFast
# +8.7% end to end on the 8B (k32: 303.2 -> 329.7 tok/s, bits equal); balanced k32 grids were slower (reverted); the silu
# epilogue slower. Now nvfp4K32Deep (o_proj / down of the 8B on a 12-tile ring a warp) and the whole set on the default:
#   test  — nvfp4_mma.test.ts: the deep forms = the k32 bits (and the rest of the GEMV checks)
#   e2e8b — llama-3.1-8b, one process: default / nvfp4NormFast / + nvfp4GemvK32 / + nvfp4K32Deep
#   e2e1b — llama-3.2-1b, one process: the same four
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "nvfp4_mma.test.ts correctness (deep forms)"
timeout 8 bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts -t "bf16 ulp" > "$OUT/test.log" 2>&1
echo "rc $?"
grep -E "^\((pass|fail)|differ|rror|^ *[0-9]+ (pass|fail)" "$OUT/test.log" | grep -v " 0/\|: 0 " | cut -c1-250 | head -12
stamp "e2e 8B: default / nvfp4NormFast / + nvfp4GemvK32 / + nvfp4K32Deep"
timeout 25 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref --profile-decode \
  --ab nvfp4NormFast --ab-reps 1 --ab-then nvfp4GemvK32,nvfp4K32Deep > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4NormFast|graph|^    (qkv|o_proj|gate_up|down)|rror" "$OUT/e2e8b.log" | cut -c1-240 | head -30
left=$((44 - (SECONDS - _t0)))
stamp "e2e 1B: default / nvfp4NormFast / + nvfp4GemvK32 / + nvfp4K32Deep ($left s)"
timeout "$left" bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 64 --no-ref \
  --ab nvfp4NormFast --ab-reps 1 --ab-then nvfp4GemvK32,nvfp4K32Deep > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4NormFast|rror" "$OUT/e2e1b.log" | cut -c1-300 | head -12
stamp done
