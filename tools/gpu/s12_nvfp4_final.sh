#!/usr/bin/env bash
# Session 12, helper nvfp4 (issue 14), closing call (budget 30 s; llama-3.1-8b). r3 measured nvfp4NormFast (8B +8.0%) and
# nvfp4GemvK32 (8B +1.5% on top, 1B +19.3%), bits equal; nvfp4K32Deep only on the 1B (+1.0%) — the 8B A/B was cut by the
# job's limit. Here: llama-3.1-8b batch 1, one process, nvfp4NormFast + nvfp4GemvK32 set (whatever the defaults are),
# nvfp4K32Deep off / on (o_proj and down on the 12-tile ring), with the eager per-role profile.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e 8B: nvfp4NormFast + nvfp4GemvK32; nvfp4K32Deep off / on"
timeout 28 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref --profile-decode \
  --set nvfp4NormFast=1,nvfp4GemvK32=1 --ab nvfp4K32Deep --ab-reps 1 > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4K32Deep|graph|^    (qkv|o_proj|gate_up|down)|rror" "$OUT/e2e8b.log" | cut -c1-240 | head -20
stamp done
