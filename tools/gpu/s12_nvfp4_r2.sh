#!/usr/bin/env bash
# Session 12, helper nvfp4 (issue 14), round 2 (budget 45 s; llama-3.1-8b). r1: the k32 ring is bitwise nvfp4_gemv_mma
# (test + 8B logits) and +2.3% end to end; decode attention is ~5 µs a layer in the graph (not 11); the k32 norm prologue
# and the silu epilogue were slower (tails). Now: k32 grids balanced (every block the same number of row tiles);
# nvfp4NormFast (the norm + act producer with less latency on its one block, same bytes); the silu test on valid shapes.
#   test  — nvfp4_mma.test.ts correctness (k32 forms, silu forms, fast norm = nvfp4_rmsnorm_act bytes)
#   e2e8b — llama-3.1-8b synthetic NVFP4 batch 1, one process: default / nvfp4GemvK32 / + nvfp4NormFast / + nvfp4K32Silu,
#           eager profile + graph marginals
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "nvfp4_mma.test.ts correctness"
timeout 12 bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts -t "bf16 ulp|persistent|write the bytes|silu" > "$OUT/test.log" 2>&1
echo "rc $?"
grep -E "^\((pass|fail)|differ|rror|^ *[0-9]+ (pass|fail)" "$OUT/test.log" | grep -v " 0/\|: 0 " | cut -c1-250 | head -16
left=$((44 - (SECONDS - _t0)))
stamp "e2e 8B: NVFP4 default / nvfp4GemvK32 / + nvfp4NormFast / + nvfp4K32Silu ($left s)"
timeout "$left" bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref --profile-decode --marginals \
  --ab nvfp4GemvK32 --ab-reps 1 --ab-then nvfp4NormFast,nvfp4K32Silu > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4GemvK32|graph|rror" "$OUT/e2e8b.log" | cut -c1-300 | head -24
stamp done
