#!/usr/bin/env bash
# Session 11 (issue 12), helper int4, round 4 (45 s): llama-3.1-8b W4A16_AWQ batch-1 decode beside the bf16 engine in one
# process (bench/quant_e2e.ts, prompt 128, 128 graph steps): quantGemvFast off, then on (with quantGemvDeep as set below);
# each run's tok/s prints as measured, then the logits comparisons.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
H=/tmp/hfmodels
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "pack 8b awq"
[ -f $H/llama-3.1-8b-awq/config.json ] || timeout 14 python3 tools/quant-packers/pack_awq_torch.py --model $M8 --out $H/llama-3.1-8b-awq --format awq > "$OUT/pack8b.log" 2>&1
echo "pack rc $?"
left=$((44 - (SECONDS - _t0)))
stamp "e2e 8b: bf16, AWQ quantGemvFast off / on ($left s)"
timeout "$left" bun bench/quant_e2e.ts --model $M8 --decode 128 --algos "" --prequantized $H/llama-3.1-8b-awq --no-ref \
  --set quantGemvDeep=DEEP --ab quantGemvFast --ab-reps 1 > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\||copy|rror|OK|MISMATCH|tok/s" "$OUT/e2e8b.log" | cut -c1-900 | head -12
stamp done
