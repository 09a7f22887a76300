#!/usr/bin/env bash
# Session 12, helper nvfp4 (issue 14), round 1 (budget 45 s; llama-3.1-8b). nvfp4_gemv_k32 now keeps its weight tiles in
# flight in a per-warp cp.async ring in shared memory (NV_K32_RING 6: 6 tiles a warp, vs 2 in registers before; same bits);
# new nvfp4K32Silu: silu_mul + act in the gate_up k32 GEMV's epilogue.
#   test  — tests/gpu/nvfp4_mma.test.ts correctness (k32 ring = nvfp4_gemv_mma bits; act / norm / add / silu forms;
#           persistent grids incl. K 1024 where the ring runs several row tiles ahead)
#   e2e8b — llama-3.1-8b synthetic NVFP4 batch 1, one process: default (nvfp4_gemv_mma) / nvfp4GemvK32 (ring) / +
#           nvfp4K32Norm / + nvfp4K32Silu, each with the eager per-kernel profile and (new, --marginals) each part's
#           marginal / alone cost inside the step's graph (is decode attention really ~11 µs a layer in the graph?)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "nvfp4_mma.test.ts correctness"
timeout 12 bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts -t "bf16 ulp|persistent" > "$OUT/test.log" 2>&1
echo "rc $?"
grep -E "^\((pass|fail)|differ|rror|^ *[0-9]+ (pass|fail)" "$OUT/test.log" | grep -v " 0/\|: 0 " | cut -c1-250 | head -16
left=$((44 - (SECONDS - _t0)))
stamp "e2e 8B: NVFP4 default / nvfp4GemvK32 (ring) / + nvfp4K32Norm / + nvfp4K32Silu ($left s)"
timeout "$left" bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref --profile-decode --marginals \
  --ab nvfp4GemvK32 --ab-reps 1 --ab-then nvfp4K32Norm,nvfp4K32Silu > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4GemvK32|graph|rror" "$OUT/e2e8b.log" | cut -c1-300 | head -24
stamp done
