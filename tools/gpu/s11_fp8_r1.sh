#!/usr/bin/env bash
# Session 11, helper fp8 (issue 14), round 1 (budget 45 s; llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights).
# TTFT of a 2048-token prompt, one process, sessions taking turns (bench/prefill_ttft.ts, median of 9):
#   default | fresh (fp8FreshPrompt: no kv_dequant_prefix launch for a new prompt) | fp8resid+fresh (fp8GemmResidual too:
#   the FP8 o_proj / down GEMMs add into the residual, the next fused norm quantizes without the add)
# logits of the 2048-token prompt vs default; per-launch profiles of default and fp8resid+fresh.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "8B FP8 + FP8 KV TTFT 2048: default vs fresh vs fp8resid+fresh"
timeout 40 bun bench/prefill_ttft.ts --model $P8 --prompt-lens 2048 --reps 9 --variants default,fresh,fp8resid+fresh \
  --profile default,fp8resid+fresh > "$OUT/ttft.log" 2>&1
echo "rc $?"; grep -E "^prompt|^profile|^  |SUMMARY|rror|sessions in" "$OUT/ttft.log" | grep -v "first run" | cut -c1-300 | head -70
stamp done
