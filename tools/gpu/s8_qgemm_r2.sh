#!/usr/bin/env bash
# Session 8 qgemm, round 2 (H200, <= 60 s): the final quant_gemm defaults — kernel check vs float64 (all formats, 1B + 8B
# shapes) and layer timing at m 16 / 64, llama-3.2-1b 64 x (128,128) W4A16 / W8A16 with the session defaults, and
# tests/gpu/quant_gemm.test.ts.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
M1=/tmp/hfmodels/llama-3.2-1b
stamp "kernel check + time"
timeout 22 python3 tools/cuda-kernel-check/quant_gemm.py --out "$OUT" --budget 16 --ms 9,16,33,64,128 --time-ms 16,64 > "$OUT/kernel.log" 2>&1
echo "rc $?"
grep -E "FAIL|SUMMARY|layer |copy ceiling|Error|error" "$OUT/kernel.log" | head -24
thr() { # NAME LIMIT [ARGS...]
  local name=$1 lim=$2
  shift 2
  stamp "throughput $name"
  LLMRT_BENCH_JSON="$OUT/t_$name.json" timeout "$lim" bun bench/throughput.ts --model $M1 --requests 64 --input 128 --output 128 "$@" > "$OUT/t_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t_$name.log" | grep -E "llmrt:|Error|error|NaN" | head -3
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], round(r['outputTps'],1), 'output tok/s')" "$OUT/t_$name.json" "$name" 2>/dev/null
}
thr w4 14 --quant W4A16
thr w8 14 --quant W8A16
rem=$((57 - (SECONDS - t0)))
if [ "$rem" -gt 8 ]; then
  stamp "tests/gpu/quant_gemm.test.ts ($rem s)"
  timeout "$rem" bun test --timeout 600000 tests/gpu/quant_gemm.test.ts > "$OUT/gpu_test.log" 2>&1
  echo "rc $?"
  grep -E "pass|fail|quant_gemm |rror" "$OUT/gpu_test.log" | cut -c1-400 | head -10
fi
stamp done
