#!/usr/bin/env bash
# Session 14: the batch4 "graphs = eager" failures appeared only with 3 test processes sharing the GPU. Three concurrent
# processes (batch_attention4, _serial, _occupancy) at HEAD: default, then LLMRT_PREFILL_PDL=0, then LLMRT_PREFILL_PLAN_CACHE=0.
set -uo pipefail
source .gpucuda/boot.sh > /dev/null
export LLMRT_CACHE_DIR=/tmp/llmrt-cache NO_COLOR=1
t0=$SECONDS
trio() {
  local label=$1; shift
  echo "== [$((SECONDS - t0)) s] $label"
  for f in batch_attention4 batch_attention4_serial batch_attention4_occupancy; do
    (env "$@" timeout 50 bun test --timeout 600000 tests/gpu/$f.test.ts > /tmp/r_${label}_$f.log 2>&1) &
  done
  wait
  cat /tmp/r_${label}_*.log | grep -E "^\(fail\)|^ *[0-9]+ (pass|fail)$" | sort | uniq -c | cut -c1-160
}
trio pdl_off LLMRT_PREFILL_PDL=0
trio default X=1
echo "== [$((SECONDS - t0)) s] done"
