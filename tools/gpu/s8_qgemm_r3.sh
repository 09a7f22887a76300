#!/usr/bin/env bash
# Session 8 qgemm, round 3 (H200, ~75 s): quant_gemm v2 — x through a cp.async shared-memory ring shared by the block
# (QM_XSMEM), fragments stored straight from registers. 1. kernel check vs float64 (136 cases) + layer timing vs the
# dequantize path / bf16 GEMM / copy ceiling; 2. variants on llama-3.1-8b shapes (same process, defaults first);
# 3. llama-3.2-1b 64 x (128,128) W4A16 / W8A16 with LLMRT_QUANT_GEMM=1.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
M1=/tmp/hfmodels/llama-3.2-1b
stamp "kernel check + time"
timeout 30 python3 tools/cuda-kernel-check/quant_gemm.py --out "$OUT" --budget 24 > "$OUT/kernel.log" 2>&1
echo "rc $?"
grep -E "FAIL|SUMMARY|layer |copy ceiling|Error|error" "$OUT/kernel.log" | head -40
stamp "variants"
timeout 40 python3 tools/cuda-kernel-check/quant_gemm.py --out "$OUT/variants" --only variants --models 8b --time-ms 16,64 --budget 35 \
  --variants ";QM_L2PF=8;QM_XSMEM=0,QM_NWN=1;QM_L2PF=16;QM_WT=2,QM_SA_ALL=1;QM_XSMEM=0;QM_L2PF=8,QM_U=4,QM_U64=2;QM_XSMEM=0,QM_NWN=2,QM_WT=2;QM_SA_ALL=1;QM_TARGET=264;QM_NS=4;QM_U=4,QM_U64=2" > "$OUT/variants.log" 2>&1
echo "rc $?"
grep -E "variant|SUMMARY|rror" "$OUT/variants.log" | head -30
thr() { # NAME LIMIT [ARGS...]
  local name=$1 lim=$2
  shift 2
  stamp "throughput $name"
  LLMRT_BENCH_JSON="$OUT/t_$name.json" timeout "$lim" bun bench/throughput.ts --model $M1 --requests 64 --input 128 --output 128 "$@" > "$OUT/t_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t_$name.log" | grep -E "llmrt:|Error|error|NaN" | head -3
}
LLMRT_QUANT_GEMM=1 thr w4_qg 14 --quant W4A16
stamp done
