#!/usr/bin/env bash
# Session 9 closing validation on final main: a job of the batched queue (models: hfrefs llama-3.1-8b), most
# important first, every step under its own timeout (the session keeps ~400 s of device time for it):
#   GPU suite (defaults; tests/gpu but cuda_session / nccl_tp2, + quant_cuda) · cuda_session vs transformers ·
#   8B batch-1 decode + TTFT 2048 beside the copy ceiling · 1B the same + the gpt-fast-style PyTorch peer · 8B bf16 512 × (128,128) ·
#   8B FP8 + FP8 KV 512 × (128,128) and batch 1 (checkpoint packed on the device by tools/quant-packers/pack_fp8_torch.py, in the
#   background from the start) · 8B 32,000-token TTFT · first run of the main job · 1B 64 × (128,128) bf16 / W4A16
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
[ -f $P8/config.json ] || (timeout 120 python3 tools/quant-packers/pack_fp8_torch.py --model $M8 --out $P8 --calib-seqs 2 --calib-len 128 > "$OUT/pack8b.log" 2>&1) &
pk=$!
gpu_suite gputests 130
gpu_suite session 40 tests/gpu/cuda_session.test.ts
stamp "latency 8B"
timeout 60 bun bench/latency.ts --model $M8 --prompt-lens 2048 --decode 128 > "$OUT/latency_8b.log" 2>&1
grep -E "copy|TTFT|decode batch 1" "$OUT/latency_8b.log" | cut -c1-300 | head -6
stamp "latency 1B"
timeout 70 bun bench/latency.ts --model $M1 --prompt-lens 128,2048 --peer > "$OUT/latency_1b.log" 2>&1
grep -E "copy|TTFT|decode batch 1|peer" "$OUT/latency_1b.log" | cut -c1-300 | head -8
thr 8b_512 $M8 512 35
wait $pk
tail -1 "$OUT/pack8b.log" 2> /dev/null | cut -c1-200
thr 8b_512_fp8kv $P8 512 50
stamp "8B FP8 + FP8 KV batch 1 and TTFT 2048: fp8_gemv1 (default) vs the 16-row GEMV"
timeout 40 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default,gemv16 --decode 128 --ttft 2048 --skip-bf16 > "$OUT/fp8_b1.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| " "$OUT/fp8_b1.log" | head -6 | cut -c1-300
stamp "8B TTFT 32,000 tokens"
timeout 45 bun bench/prefill_ttft.ts --model $M8 --prompt-lens 32000 --reps 1 --variants default > "$OUT/ttft32k.log" 2>&1
echo "rc $?"; grep -E "SUMMARY|TTFT|ms" "$OUT/ttft32k.log" | head -4 | cut -c1-250
first_run
thr 1b_64 $M1 64 20
thr 1b_64_w4 $M1 64 30 --quant W4A16
thr_summary 8b_512 8b_512_fp8kv 1b_64 1b_64_w4
stamp done
