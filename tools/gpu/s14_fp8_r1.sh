#!/usr/bin/env bash
# Session 14, helper fp8, round 1 (llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights). Budget 100 s.
# Decode attention of the 512-request run (decode_attention_batch4_q8_fp8kv: 3.45 ms of the 10.55-ms graph):
#   1. (third) kernel harness (tools/cuda-kernel-check/decode_attention_batch4.py, the bench graph's geometry: split 256 of maxSeqLen
#      288, all 512 sequences at 192 keys, and 128..256): registers / smem / the driver's blocks an SM, a per-block
#      globaltimer / clock64 trace (DB4_TRACE build: block time, prologue / first tile / tiles / merge phases, waves), and
#      the same-bits configurations (stages, min blocks an SM) and batch4s (batchAttention4Serial) timed
#   2. (first) GPU tests: tests/gpu/batch_attention4_serial.test.ts (session 13's) and batch_attention4_occupancy.test.ts (new)
#   3. (second) s13_attn_r1.sh PART=1's graph A/B in one process: default / batchAttention4Serial / batchAttention4Occupancy (new: the
#      same kernels with 10 blocks an SM, 96 registers) / both — 512-row decode graph replays, a 256 × 128 prefill step,
#      and the logits of a prefill + two 256-row decode steps bit for bit
#   4. if time is left: short-prompt prefill attention tilings (256 × 128 tokens, flash_tile_time.py; t = tile scan)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "GPU tests"
timeout 20 bun test tests/gpu/batch_attention4_serial.test.ts tests/gpu/batch_attention4_occupancy.test.ts > "$OUT/test_b4.log" 2>&1
echo "rc $?"
grep -E "pass|fail|rror" "$OUT/test_b4.log" | head -12
thr ab $P8 512 $((66 - (SECONDS - _t0))) --ab-rows 512 --ab-prefill 256 \
  --ab-opts '{"default":{},"serial":{"batchAttention4Serial":true},"occ":{"batchAttention4Occupancy":true},"both":{"batchAttention4Serial":true,"batchAttention4Occupancy":true}}'
grep -E "^A/B|^  default|^  serial|^  occ|^  both|^  logits|rror" "$OUT/t_ab.log" | cut -c1-600
stamp "decode attention harness"
timeout $((86 - (SECONDS - _t0))) python3 tools/cuda-kernel-check/decode_attention_batch4.py --only timing --fp8 1 --no-batch2 --split 256 --info --trace 2 \
  --cases 8b:512:192-193,8b:512:128-256,8b:64:192-193 --fcfgs "d;2,2,1,10;2,1,1,12;2,3,1,7;s" > "$OUT/b4.log" 2>&1
echo "rc $?"
grep -E "copy|seqs ctx|regs|trace|FAIL|Error|error|Traceback" "$OUT/b4.log" | cut -c1-700 | head -40
rem=$((96 - (SECONDS - _t0)))
if [ "$rem" -gt 8 ]; then
  stamp "prefill tilings, 256 x 128 tokens ($rem s)"
  timeout "$rem" python3 tools/cuda-kernel-check/flash_tile_time.py --kinds wgt,wgv_g2n64s3ob1t,wgv_g1n64s3ob1t,wgv_g1n64s2b2t,wgv_g2n64s2b2t \
    --shapes 128:32768:128 --no-sdpa --no-check > "$OUT/ftt.log" 2>&1
  echo "rc $?"
  grep -E "regs|us = |bitwise|differs|SUMMARY|rror" "$OUT/ftt.log" | cut -c1-300 | head -14
fi
stamp done
