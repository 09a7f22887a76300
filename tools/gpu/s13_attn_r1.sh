#!/usr/bin/env bash
# Session 13, helper attn, round 1 (llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights). About 110 s in all; for
# 45-s jobs run it twice: PART=1 (the GPU test and the graph A/B), PART=2 (the end-to-end pair).
# batchAttention4Serial (LLMRT_BATCH_ATTENTION4_SERIAL, default off, unmeasured): decode steps of >= 256 sequences over an
# e4m3 cache on decode_attention_batch4s_* — grid z 1, a block takes its token's splits in turn, so the bench's graph
# (maxSeqLen 288: 2 splits of 256, the second empty at <= 256 keys) launches 4,096 blocks a layer instead of 8,192; the same
# bits by construction (CPU emulation: tools/cuda-kernel-check/decode_batch4_emu.py).
#   1. the new GPU test (bitwise vs the default session, graphs = eager, 260 sequences over 1..530 keys)
#   2. one process, sessions in turn: the 512-row decode graph at 192 keys A/B and the logits of a prefill + two 256-row
#      decode steps compared bit for bit (--ab-rows / --ab-opts)
#   3. 512 × (128,128) output tok/s, A default / B the switch, one process each, greedy ids compared (512/512 expected)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
phases() { sed -n '/steps of the timed run/,/^  step 3:/p' "$OUT/t_$1.log" | grep -v "^| ---" | grep -iE "^\| (decode|prefill|mixed)" | cut -c1-200 | head -4; }
PART=${PART:-all}
if [ "$PART" != 2 ]; then
  stamp "GPU test"
  timeout 25 bun test tests/gpu/batch_attention4_serial.test.ts > "$OUT/test_serial.log" 2>&1
  echo "rc $?"
  grep -E "pass|fail|rror" "$OUT/test_serial.log" | head -12
  thr ab $P8 512 $((44 - (SECONDS - _t0))) --ab-rows 512 --ab-prefill 256 --ab-opts '{"default":{},"serial":{"batchAttention4Serial":true}}'
  grep -E "^A/B|^  default|^  serial|^  logits|rror" "$OUT/t_ab.log" | cut -c1-600
fi
if [ "$PART" != 1 ]; then
  t1=$SECONDS
  thr a512 $P8 512 24 --profile-steps
  phases a512
  LLMRT_BATCH_ATTENTION4_SERIAL=1 thr b512 $P8 512 $((44 - (SECONDS - t1))) --profile-steps
  phases b512
  thr_summary a512 b512
  same_ids a512 b512
fi
stamp done
