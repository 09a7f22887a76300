#!/usr/bin/env bash
# FP8 on CUDA (issue 14) on one H200 (carry .gpucuda): the FP8 GPU and plan tests, a random-weight
# llama-3.2-1b checkpoint (reused from /tmp/hfmodels when an earlier run made one), then
# bench/fp8_e2e.ts on it. Logs in $OUT; a summary is printed.
#   bash tools/gpu/fp8_cuda.sh [tests] [model] [bench]   (default: all three)
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
mkdir -p ../shared && ln -sfn "$LLMRT_MODELS" ../shared/models
m1b=/tmp/hfmodels/llama-3.2-1b
[ -e $m1b/config.json ] || m1b=/tmp/m1b
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
for s in ${*:-tests model bench}; do
  stamp "$s"
  case $s in
    tests)
      timeout 150 bun test --timeout 600000 tests/gpu/fp8_cuda.test.ts tests/quant_fp8_cuda_plan.test.ts > "$OUT/fp8_tests.log" 2>&1
      grep -E "^\(fail|^\(pass|CUDA vs CPU|copy ceiling|FP8: |of copy|^ *[0-9]+ (pass|fail)|rror" "$OUT/fp8_tests.log" | cut -c1-400 | head -60 ;;
    model)
      [ -e $m1b/config.json ] || timeout 120 python3 .gpucuda/hf_reference.py make-model --preset llama-3.2-1b --out $m1b > "$OUT/model.log" 2>&1
      ls $m1b ;;
    bench)
      timeout "${BENCH_TIMEOUT:-240}" bun bench/fp8_e2e.ts --model $m1b --decode 128 --ttft 2048 --calib 8 ${BENCH_ARGS:-} > "$OUT/fp8_e2e.log" 2>&1
      tail -8 "$OUT/fp8_e2e.log" | cut -c1-600 ;;
  esac
done
stamp done
