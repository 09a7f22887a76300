#!/usr/bin/env bash
# Session 5 throughput, round 1: llama-3.1-8b bf16 512 x (128, 128) (issue 16 item 3; never measured before).
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stamp 8b-512
LLMRT_BENCH_JSON=$OUT/t8b_512.json timeout 150 bun bench/throughput.ts --model /tmp/hfmodels/llama-3.1-8b --requests 512 --input 128 --output 128 > "$OUT/t8b_512.log" 2>&1
echo "rc $?"
grep -v -i warn "$OUT/t8b_512.log" | tail -15
stamp done
