#!/usr/bin/env bash
# Session 11 (issue 16 item 3), helper tput, round 1 (budget 45 s): where the llama-3.2-1b bf16 64 × (128,128) run
# goes, and the first cheap levers.
#   base   — default, --profile-steps --profile-gpu --reps 5 (phases; the 64-row decode step launch by launch)
#   breakdown — bench/decode_breakdown.ts --rows 64: the 64-row step's graph replay by role (marginal / alone), default
#            and batchPdl (with PDL cleared in the same session)
#   gemm   — bench/decode_gemm.ts: the step's cuBLASLt linears at M 64 in one graph per linear over 16 layers' weights:
#            heuristic / tuned (engine default: 8 candidates timed with the weight in L2) / cold (gemmTuneCold: 32,
#            weights cycled past L2); lm_head pinned (engine default) vs tuned
#   A/B    — --reps 5 each: default, LLMRT_GEMM_TUNE_COLD=1, + LLMRT_DECODE_LOGITS_TUNED=1, --defer-decodes 1,
#            LLMRT_BATCH_PDL=1 (norm / SiLU / attention / sampler launched early after each GEMM), LLMRT_WGMMA_PREFILL=0 (flash_prefill for the 128-token prompts)
#   8B     — bf16 512 × (128,128) default and --defer-decodes 1 (one run each), if the time is left
# (After r2 the switches gemmTuneCold, gemmTuneSplitK and batchPdl were removed: no gain; GemmOptions.tuneCold / tuneSplitK stay for bench/decode_gemm.ts.)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
phases() { sed -n '/steps of the timed run/,$p' "$OUT/t_$1.log" | grep -E "^\| (prefill|mixed|decode|collect)|graph|top:|runs:" | cut -c1-420; }
thr base $M1 64 14 --profile-steps --profile-gpu --reps 5
phases base
stamp "decode_breakdown 64 rows ctx 192: default vs batchPdl (graph replays by role)"
timeout 14 bun bench/decode_breakdown.ts --model $M1 --rows 64 --ctx 192 --opts '{}' --opts2 '{"batchPdl":true}' > "$OUT/breakdown.log" 2>&1
echo "rc $?"
grep -vE "^  #|eager launches" "$OUT/breakdown.log" | grep -vi warn | cut -c1-200 | head -40
stamp "decode_gemm 1b m64"
timeout 10 bun bench/decode_gemm.ts --model 1b --m 64 > "$OUT/dgemm.log" 2>&1
echo "rc $?"
grep -E "GPU|qkv|  o |gate_up|down|lm_head|SUMMARY|step-order|rror" "$OUT/dgemm.log" | cut -c1-400 | head -12
LLMRT_GEMM_TUNE_COLD=1 thr cold $M1 64 6 --profile-steps --reps 5
phases cold
LLMRT_GEMM_TUNE_COLD=1 LLMRT_DECODE_LOGITS_TUNED=1 thr coldlog $M1 64 6 --profile-steps --reps 5
phases coldlog
thr defer $M1 64 6 --profile-steps --reps 5 --defer-decodes 1
phases defer
LLMRT_BATCH_PDL=1 thr bpdl $M1 64 6 --profile-steps --reps 5
phases bpdl
LLMRT_WGMMA_PREFILL=0 thr nowg $M1 64 6 --profile-steps --reps 3
phases nowg
thr_summary base cold coldlog defer bpdl nowg
same_ids base cold
same_ids base coldlog
same_ids base bpdl
left=$((44 - (SECONDS - _t0)))
echo "left $left s"
if [ "$left" -gt 28 ] && [ -f $M8/config.json ]; then
  thr 8b_512 $M8 512 14 --profile-steps
  phases 8b_512
  thr 8b_512_defer $M8 512 $((left - 15)) --profile-steps --defer-decodes 1
  phases 8b_512_defer
  thr_summary 8b_512 8b_512_defer
fi
stamp done
