#!/usr/bin/env bash
# Session 14 closing figures on merged main (defaults as committed; nothing set through the environment), run first in a
# batched device call (models: hfrefs llama-3.1-8b llama-3.1-8b-fp8). About 360 s:
#   GPU suite in 3 processes + cuda_session vs transformers beside it · 8B bf16 batch 1 + TTFT 2048 · 1B batch 1 + TTFT
#   128 / 2048 · 8B bf16 512 × (128,128) · 8B FP8 + FP8 KV 512 × (128,128) twice · FP8 batch 1 + TTFT 2048 · 1B 64 ×
#   (128,128) · the gpt-fast PyTorch peer on the 1B (int4 / NVFP4 batch 1: the helpers' same-call jobs).
# CLOSING_LITE=1 leaves out the second FP8 512 run and the peer (~80 s less).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
(timeout 70 bun test --timeout 600000 tests/gpu/cuda_session.test.ts > "$OUT/session.log" 2>&1; echo "rc $?" >> "$OUT/session.log") &
ps=$!
gpu_suite_par gputests 150 3
wait $ps
stamp "cuda_session vs transformers"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|^rc" "$OUT/session.log" | cut -c1-300 | head -12
stamp "latency 8B"
timeout 40 bun bench/latency.ts --model $M8 --prompt-lens 2048 --decode 128 > "$OUT/latency_8b.log" 2>&1
grep -E "copy|TTFT|decode batch 1" "$OUT/latency_8b.log" | cut -c1-300 | head -6
stamp "latency 1B"
timeout 25 bun bench/latency.ts --model $M1 --prompt-lens 128,2048 > "$OUT/latency_1b.log" 2>&1
grep -E "copy|TTFT|decode batch 1" "$OUT/latency_1b.log" | cut -c1-300 | head -8
thr 8b_512 $M8 512 34
thr 8b_512_fp8kv $P8 512 38
[ "${CLOSING_LITE:-0}" = 1 ] || thr 8b_512_fp8kv_b $P8 512 38
stamp "8B FP8 + FP8 KV batch 1 and TTFT 2048"
timeout 40 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --decode 128 --ttft 2048 --skip-bf16 > "$OUT/fp8_b1.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| " "$OUT/fp8_b1.log" | head -8 | cut -c1-300
thr 1b_64 $M1 64 20
thr_summary 8b_512 8b_512_fp8kv 8b_512_fp8kv_b 1b_64
if [ "${CLOSING_LITE:-0}" != 1 ]; then
  stamp "gpt-fast peer (PyTorch, torch.compile reduce-overhead), the 1B checkpoint"
  timeout 45 python3 bench/gpt_fast_peer.py --model "$M1" --prompt 128 --decode 256 > "$OUT/peer_1b.log" 2>&1
  echo "rc $?"; grep PEER_RESULT "$OUT/peer_1b.log" | cut -c1-400
fi
stamp done
