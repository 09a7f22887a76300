#!/usr/bin/env bash
# Session 8 closing validation on final main: a job of the batched queue (models: hfrefs llama-3.1-8b), most
# important first. PART=1 (default) correctness + 1B numbers, PART=2 the 8B numbers (two device calls on one warm
# machine: each call is limited to 600 s):
#   1: GPU suite (defaults) + quant_cuda; cuda_session vs transformers; first run; 1B latency with the gpt-fast peer;
#      1B 64 × (128,128) bf16 / W4A16 / W8A16
#   2: 8B batch-1 decode + TTFT 2048 beside the copy ceiling; 8B bf16 512 × (128,128); 8B FP8 + FP8 KV 512 × (128,128)
#      (checkpoint packed on the device by tools/quant-packers/pack_fp8_torch.py)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
if [ "${PART:-1}" = 1 ]; then
  gpu_suite gputests 170
  gpu_suite session 60 tests/gpu/cuda_session.test.ts
  first_run
  stamp "latency 1B (peer)"
  timeout 60 bun bench/latency.ts --model $M1 --peer > "$OUT/latency_1b.log" 2>&1
  grep -E "copy|TTFT|decode batch 1|peer|llmrt /" "$OUT/latency_1b.log" | cut -c1-300 | head -12
  thr 1b_64 $M1 64 25
  thr 1b_64_w4 $M1 64 40 --quant W4A16
  thr 1b_64_w8 $M1 64 40 --quant W8A16
  thr_summary 1b_64 1b_64_w4 1b_64_w8
else
  P8=/tmp/hfmodels/llama-3.1-8b-fp8
  [ -f $P8/config.json ] || (timeout 100 python3 tools/quant-packers/pack_fp8_torch.py --model $M8 --out $P8 > "$OUT/pack8b.log" 2>&1) &
  pk=$!
  stamp "latency 8B"
  timeout 75 bun bench/latency.ts --model $M8 --prompt-lens 128,2048 --decode 128 > "$OUT/latency_8b.log" 2>&1
  grep -E "copy|TTFT|decode batch 1" "$OUT/latency_8b.log" | cut -c1-300 | head -8
  thr 8b_512 $M8 512 45
  wait $pk
  tail -1 "$OUT/pack8b.log" 2> /dev/null | cut -c1-200
  thr 8b_512_fp8kv $P8 512 60
  thr_summary 8b_512 8b_512_fp8kv
fi
stamp done
