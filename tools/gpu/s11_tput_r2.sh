#!/usr/bin/env bash
# Session 11 (issue 16 item 3), helper tput, round 2 (budget 45 s). r1: default 43.6k tok/s; gemmTuneCold +
# decodeLogitsTuned 44.1k (the lm_head at 64 rows on its tuned algorithm: 148.4 -> 134.4 us); batchPdl no gain.
#   breakdown — bench/decode_breakdown.ts --rows 64 --ctx 192: the 64-row step's graph replay by role (marginal / alone),
#               default vs gemmTuneCold + gemmTuneSplitK + decodeLogitsTuned
#   gemm      — bench/decode_gemm.ts 1B m64: + coldsk (cold tuning with split-K variants of every candidate)
#   A/B       — 1B 64 x (128,128) --reps 5: default, cold + logits, cold + split-K + logits
#   attention — batch2_occupancy.py 1B hd64 at 64 / 16 sequences: stages / blocks-per-SM configurations of the same
#               warps (the same bits) against the default (4 warps, 2 stages)
# (After r2 the switches gemmTuneCold, gemmTuneSplitK and batchPdl were removed: no gain; GemmOptions.tuneCold / tuneSplitK stay for bench/decode_gemm.ts.)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
phases() { sed -n '/steps of the timed run/,$p' "$OUT/t_$1.log" | grep -E "^\| (prefill|decode|collect)|runs:" | cut -c1-300; }
stamp "decode_breakdown 64 rows ctx 192"
timeout 16 bun bench/decode_breakdown.ts --model $M1 --rows 64 --ctx 192 --opts '{}' \
  --opts2 '{"gemmTuneCold":true,"gemmTuneSplitK":true,"decodeLogitsTuned":true}' > "$OUT/breakdown.log" 2>&1
echo "rc $?"
grep -vE "^  #|eager launches" "$OUT/breakdown.log" | grep -vi warn | cut -c1-170 | head -44
stamp "decode_gemm 1b m64"
timeout 9 bun bench/decode_gemm.ts --model 1b --m 64 > "$OUT/dgemm.log" 2>&1
echo "rc $?"
grep -E "qkv|  o |gate_up|down|lm_head|SUMMARY|step-order|rror" "$OUT/dgemm.log" | cut -c1-330 | head -12
thr def $M1 64 6 --reps 5
grep -E "runs:" "$OUT/t_def.log"
LLMRT_GEMM_TUNE_COLD=1 LLMRT_DECODE_LOGITS_TUNED=1 thr cl $M1 64 6 --profile-steps --reps 5
phases cl
LLMRT_GEMM_TUNE_COLD=1 LLMRT_GEMM_TUNE_SPLITK=1 LLMRT_DECODE_LOGITS_TUNED=1 thr clsk $M1 64 7 --profile-steps --reps 5
phases clsk
thr_summary def cl clsk
left=$((44 - (SECONDS - _t0)))
echo "left $left s"
if [ "$left" -gt 6 ]; then
  stamp "batch2 hd64 configurations (same warps)"
  timeout "$((left - 1))" python3 tools/cuda-kernel-check/batch2_occupancy.py --shapes 1b --rows 64,16 --no-fp8 --hd64-configs "4,3;4,1,8;4,2,6" > "$OUT/b2occ.log" 2>&1
  echo "rc $?"
  grep -E "us/layer|SUMMARY|rror" "$OUT/b2occ.log" | cut -c1-200 | head -10
fi
stamp done
