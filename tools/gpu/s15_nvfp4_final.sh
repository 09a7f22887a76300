#!/usr/bin/env bash
# Session 15 closing call (lead), issue 14: nvfp4AttnAct (off) once more against the new default (nvfp4ActLaunch on) —
# the helper's r2 +1.1%, r1 -0.1%: no clear gain yet. llama-3.1-8b NVFP4 batch 1, one process, A / B alternating 3 times,
# logits compared (bitwise expected). ~60 s.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e 8B NVFP4: default (nvfp4ActLaunch on) vs +nvfp4AttnAct, 3 alternations"
timeout 70 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref \
  --ab nvfp4AttnAct --ab-reps 3 > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4AttnAct|rror" "$OUT/e2e8b.log" | cut -c1-300 | head -12
stamp done
