#!/usr/bin/env bash
# Session 12, helper fp8 (issue 14), round 1 (budget 45 s; llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights).
# One process: 512 × (128,128) (the default, decodeDeferSteps 1; a CPU run of the real Scheduler shows --defer-decodes 2 / 3
# give the same 129 steps: 2 prefill-only steps of 32,768 tokens, 127 decode steps of 512), --profile-steps (phases),
# --profile-gpu (the 32,768-token prefill step and the 512-row decode step launch by launch),
# and (new --ab-rows; same engine, sessions in turn) the graph step of 1 and 512 rows at context 192: the default vs
# fp8DecodeAttnQuant (decode_attention_batch4_q8_fp8kv: o_proj e4m3 input from the attention; 512 rows) vs fp8Gemv1Lean
# (fp8_gemv1l: <= 80 registers; 1 row). Each switch is a no-op at the other row count: a noise control.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
phases() { sed -n '/steps of the timed run/,/^  step 3:/p' "$OUT/t_$1.log" | grep -v "^| ---" | grep -iE "^\| (decode|prefill|mixed)" | cut -c1-200 | head -4; }
thr f512 $P8 512 43 --profile-steps --profile-gpu --breakdown-ctx 192 --ab-rows 1,512 --ab-opts '{"dq8":{"fp8DecodeAttnQuant":true},"lean":{"fp8Gemv1Lean":true}}'
phases f512
grep -E "^prefill |^decode |^  top|^  GEMMs|^A/B|^  default|^  dq8|^  lean|rror" "$OUT/t_f512.log" | cut -c1-900
thr_summary f512
stamp done
