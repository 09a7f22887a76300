#!/usr/bin/env bash
# Session 14 (issue 16 item 3), helper tput, round 1 (budget 45 s). llama-3.2-1b bf16 64 x (128,128).
# batchAttention4Ring (LLMRT_BATCH_ATTENTION4_RING, default off): the hd64 bf16 batch attention on
# decode_attention_batch4x_bf16_hd64 — batch4's 2 warps and tiles with a 4-stage cp.async ring (batch4: 2), so a warp's ~6
# key tiles of a 64-sequence step wait ~2 HBM round trips in a row instead of ~3. Same bits by construction.
# LLMRT_KERNEL_DEFINES (new, bench knob) sets the kernel's DB4X_NW64 / DB4X_ST64 / DB4X_MINB64 for the other variants
# (4 warps: another key partition, other bits).
#   1. end to end, --reps 5 each, alternating: default, ring (2 warps, 4 stages), ring 4 warps 2 stages, ring 4 warps 3 stages
#      (hd64: 48 KB ring? no — 4 x 3 x 4 KB = 48 KB: not built; 2 warps 5 stages instead); greedy ids compared
#   2. the kernel alone (harness, 1B 64 seqs at 128..256 / 64..128 keys, 8 layers' caches): warps,stages,subtiles,minBlocks
#   3. decode_breakdown 64 rows at 192 keys, default vs ring (one process), if time is left
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
K=decode_attention_batch4x_bf16_hd64
ring() { (export LLMRT_BATCH_ATTENTION4_RING=1 LLMRT_KERNEL_DEFINES="$K:$2"; thr "$1" $M1 64 6 --reps 5); }
thr def1 $M1 64 7 --reps 5 --profile-steps
sed -n "/steps of the timed run/,\$p" "$OUT/t_def1.log" | grep -E "^\| (prefill|decode)" | cut -c1-200
ring r24a "DB4X_NW64=2,DB4X_ST64=4,DB4X_MINB64=4"
ring r42a "DB4X_NW64=4,DB4X_ST64=2,DB4X_MINB64=4"
ring r25a "DB4X_NW64=2,DB4X_ST64=5,DB4X_MINB64=4"
thr def2 $M1 64 6 --reps 5
ring r24b "DB4X_NW64=2,DB4X_ST64=4,DB4X_MINB64=4"
ring r42b "DB4X_NW64=4,DB4X_ST64=2,DB4X_MINB64=4"
grep -h "runs:" "$OUT"/t_def1.log "$OUT"/t_r24a.log "$OUT"/t_r42a.log "$OUT"/t_r25a.log "$OUT"/t_def2.log "$OUT"/t_r24b.log "$OUT"/t_r42b.log
thr_summary def1 r24a r42a r25a def2 r24b r42b
same_ids def1 def2
same_ids def1 r24a
same_ids def1 r25a
same_ids def1 r42a
same_ids r42a r42b
left=$((44 - (SECONDS - _t0)))
stamp "kernel: batch4 hd64 configurations (warps,stages,subtiles,minBlocks), left $left s"
if [ "$left" -gt 8 ]; then
  timeout "$((left > 17 ? 14 : left - 3))" python3 tools/cuda-kernel-check/decode_attention_batch4.py --only timing --fp8 0 \
    --cases 1b:64:128-256,1b:64:64-128 --cfgs "d;2,4,1,4;2,5,1,4;4,2,1,8;4,2,1,4;2,2,2,8;3,2,1,4" > "$OUT/b4.log" 2>&1
  echo "rc $?"
  grep -E "copy|seqs ctx|Error|error|Traceback" "$OUT/b4.log" | cut -c1-700 | head -8
fi
left=$((44 - (SECONDS - _t0)))
if [ "$left" -gt 6 ]; then
  stamp "decode_breakdown 64 rows ctx 192: default vs ring (2 warps, 4 stages)"
  timeout "$((left - 1))" bun bench/decode_breakdown.ts --model $M1 --rows 64 --ctx 192 --opts '{}' --opts2 '{"batchAttention4Ring":true}' > "$OUT/breakdown.log" 2>&1
  echo "rc $?"
  grep -E "== |graph replay|^  [a-z_0-9 ]+ +[0-9]+ |sum of" "$OUT/breakdown.log" | cut -c1-170
fi
stamp done
