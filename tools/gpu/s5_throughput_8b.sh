#!/usr/bin/env bash
# Session 5 throughput, the 8B round: llama-3.1-8b bf16 512 x (128, 128) (issue 16's >= 18,000 target; never measured
# before) and 64 x (128, 128) with this branch's kernels, then 64 x (128, 128) with main's (LLMRT_BATCH_ATTENTION=0
# LLMRT_SKINNY_GEMM=0). One process each (the engine is read from the safetensors every time).
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
M=/tmp/hfmodels/llama-3.1-8b
run() { # NAME REQUESTS LIMIT [ENV...]
  local name=$1 n=$2 lim=$3
  shift 3
  stamp "8b $name"
  env "$@" LLMRT_BENCH_JSON="$OUT/t8b_$name.json" timeout "$lim" bun bench/throughput.ts --model $M --requests "$n" --input 128 --output 128 > "$OUT/t8b_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t8b_$name.log" | grep -E "llmrt:|model|Error|error" | head -6
}
run 512 512 45 LLMRT_BATCH_ATTENTION=1 LLMRT_SKINNY_GEMM=1
run 64 64 25 LLMRT_BATCH_ATTENTION=1 LLMRT_SKINNY_GEMM=1
run 64_main 64 20 LLMRT_BATCH_ATTENTION=0 LLMRT_SKINNY_GEMM=0
stamp done
