#!/usr/bin/env bash
# Issue 16 device run (kernels only, no Bun needed): fused decode kernels checked and timed, the
# llama-3.2-1b-shaped decode step fused vs unfused vs the copy ceiling, and the gpt-fast-style peer.
#   bash tools/gpu/issue16.sh [decode_step.py args]      logs under $OUT
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader | tee "$OUT/gpu.txt"
t0=$SECONDS
timeout 330 python3 tools/cuda-kernel-check/decode_step.py --out "$OUT" "$@" 2>&1 | tee "$OUT/decode_step.log" | grep -v "^  ok  "
echo "== decode_step.py done after $((SECONDS - t0)) s"
timeout 200 python3 bench/gpt_fast_peer.py --preset llama-3.2-1b --prompt 128 --decode 256 2>&1 | grep -v -i warn | tail -5 | tee "$OUT/gpt_fast_peer.log"
echo "== done after $((SECONDS - t0)) s"
