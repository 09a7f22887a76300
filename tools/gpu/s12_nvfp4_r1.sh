#!/usr/bin/env bash
# Session 12, helper nvfp4 (issue 14), round 1 (budget 45 s; llama-3.2-1b, llama-3.1-8b). Same-job end to end of the
# NVFP4 default (nvfp4_gemv_mma) vs nvfp4GemvK32 (session 11's final 4-blocks/SM build, never measured end to end) vs
# + nvfp4K32Norm, each with the eager per-kernel profile and (new, --marginals) each part's marginal / alone cost
# inside the step's graph: answers whether decode attention really costs ~11 µs a layer in the graph.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e 1B: bf16; NVFP4 default / nvfp4GemvK32 / + nvfp4K32Norm"
timeout 15 bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-nvfp4 --decode 64 --no-ref --profile-decode --marginals \
  --ab nvfp4GemvK32 --ab-reps 1 --ab-then nvfp4K32Norm > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\| (bf16|NVFP4)|copy ceiling|nvfp4GemvK32|graph|rror" "$OUT/e2e1b.log" | cut -c1-400 | head -24
left=$((44 - (SECONDS - _t0)))
stamp "e2e 8B: NVFP4 default / nvfp4GemvK32 / + nvfp4K32Norm ($left s)"
timeout "$left" bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref --profile-decode --marginals \
  --ab nvfp4GemvK32 --ab-reps 1 --ab-then nvfp4K32Norm > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4GemvK32|graph|rror" "$OUT/e2e8b.log" | cut -c1-400 | head -24
stamp done
