#!/usr/bin/env bash
# Session 10, issue 16 (helper prefill), round 1 (budget 45 s): where the prefill time goes, plus two cheap A/Bs.
#   1b — llama-3.2-1b, 2048-token prompt, one process: default vs resid (gemmResidual: residual add in the o_proj /
#        down GEMM epilogue, add_rmsnorm -> rmsnorm), wide (gemmTuneWide: 32 tuning candidates) and both; TTFT median
#        of 9 (sessions alternate), host enqueue vs device time, eager per-launch profiles of default and resid+wide.
#   8b — llama-3.1-8b, 32,000-token prompt: default TTFT (2 reps) and its eager per-launch profile (attention vs GEMMs).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "1b 2048: default / resid / wide / resid+wide, profiles"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 17 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 2048 --reps 9 \
  --variants default,resid,wide,resid+wide --profile default,resid+wide > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "^GPU|ceiling|prompt 2048|GEMMs|SUMMARY|rror" "$OUT/ttft_1b.log" | cut -c1-300
grep -E "^profile|^  [a-z_0-9 x]+×" "$OUT/ttft_1b.log" | cut -c1-200 | head -60
left=$((44 - (SECONDS - _t0)))
stamp "8b 32k: default TTFT + profile ($left s left)"
LLMRT_BENCH_JSON=$OUT/ttft_8b.json timeout "$left" bun bench/prefill_ttft.ts --model "$M8" --prompt-lens 32000 --reps 2 \
  --variants default --profile default > "$OUT/ttft_8b.log" 2>&1
echo "rc $?"
grep -E "^GPU|ceiling|prompt 32000|GEMMs|SUMMARY|rror|^profile|^  [a-z_0-9 x]+×" "$OUT/ttft_8b.log" | cut -c1-300 | head -40
stamp done
