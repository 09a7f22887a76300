#!/usr/bin/env bash
# Session 11, helper nvfp4 (issue 14), round 1 (budget 40 s; llama-3.1-8b, llama-3.2-1b): where NVFP4 batch-1 decode stands.
#   e2e8b — bench/quant_e2e.ts --synthetic-nvfp4 --profile-decode on llama-3.1-8b: bf16 and NVFP4 (nvfp4Mma, default on)
#           batch 1 in one process, each with one decode step's launches summed by kernel and by linear role (µs, % of copy)
#   e2e1b — the same on llama-3.2-1b (the non-GEMV costs of the NVFP4 step vs the bf16 step's)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e 8B: bf16 vs synthetic NVFP4, decode profiles"
timeout 28 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --decode 64 --no-ref --profile-decode > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\||^  |copy ceiling|rror" "$OUT/e2e8b.log" | cut -c1-900 | head -40
left=$((39 - (SECONDS - _t0)))
[ "$left" -gt 4 ] || { stamp "no time left"; exit 0; }
stamp "e2e 1B ($left s)"
timeout "$left" bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-nvfp4 --decode 64 --no-ref --profile-decode > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\||^  |copy ceiling|rror" "$OUT/e2e1b.log" | cut -c1-900 | head -40
stamp done
