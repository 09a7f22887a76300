#!/usr/bin/env bash
# Session 4, issue 12 (quant-gemv helper) on one H200 (carry .gpucuda): the quantized GEMV kernels'
# correctness and bandwidth (tests/quant_cuda.test.ts), the tuning sweep (bench/quant_gemv_tune.ts),
# then bench/quant_e2e.ts on a random-weight llama-3.2-1b. Logs in $OUT.
# Usage: bash tools/gpu/quant_gemv_s4.sh [tests] [tune] [e2e] [e2e4]   (e2e4: W4A16 only)
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
for s in ${*:-tests e2e}; do
  stamp "$s"
  case $s in
    tests)
      timeout 150 bun test --timeout 600000 tests/quant_cuda.test.ts > "$OUT/quant_cuda.log" 2>&1
      grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)|copy ceiling|all decoder|rror" "$OUT/quant_cuda.log" | cut -c1-300 | head -40 ;;
    tune)
      timeout 150 bun bench/quant_gemv_tune.ts --json "$OUT/quant_gemv_tune.json" > "$OUT/quant_gemv_tune.log" 2>&1
      grep -E "same bits|DIFFERENT|rror|m=1 " "$OUT/quant_gemv_tune.log" | cut -c1-300 | head -60 ;;
    e2e|e2e4)
      algos=W4A16,W8A16; [ "$s" = e2e4 ] && algos=W4A16
      timeout 60 python3 .gpucuda/hf_reference.py make-model --preset llama-3.2-1b --out /tmp/m1b > "$OUT/make1b.log" 2>&1; tail -1 "$OUT/make1b.log"
      timeout 200 bun bench/quant_e2e.ts --model /tmp/m1b --decode 128 --algos "$algos" > "$OUT/quant_e2e.log" 2>&1; tail -8 "$OUT/quant_e2e.log" | cut -c1-600 ;;
  esac
done
stamp done
