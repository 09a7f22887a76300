#!/usr/bin/env bash
# Session 7, issue 16 item 4 (H200): llama-3.1-8b LLM.create from the safetensors checkpoint with an empty engine cache,
# first with an empty kernel cache too (the first run on a machine), then with the kernels cached (a new model on a
# machine that has run llmrt before), each followed by one cached-engine run. Warm page cache (the checkpoint was just
# written). Own cache dir, so other jobs' cubins do not count.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0
M=/tmp/hfmodels/llama-3.1-8b
D=/tmp/s7-loadcache
rm -rf "$D"
du -sh "$M"; cat "$M"/*.safetensors > /dev/null
timeout 60 bun test tests/gpu/compile_pool.test.ts 2>&1 | grep -E "pass|fail|start " | head -5
echo "== empty engine + kernel cache"
timeout 90 bun bench/load.ts --model "$M" --backend cuda --cached-runs 1 --cache-dir "$D" 2>&1 | tee "$OUT/load_cold_kernels.log" | grep -E "LLM.create|rror"
rm -rf "$D/engines"; ls "$D"
echo "== empty engine cache, kernels cached"
timeout 90 bun bench/load.ts --model "$M" --backend cuda --cached-runs 2 --cache-dir "$D" 2>&1 | tee "$OUT/load_warm_kernels.log" | grep -E "LLM.create|rror"
