#!/usr/bin/env bash
# Session 5's serve-vs-offline run on one H200 (issue 13), a batch job (tools/gpu/queue_job.sh NAME this 75 llama-3.2-1b):
# `llmrt serve` (the executor as the CLI picks it: a Web Worker on a GPU; with LLMRT_STEP_TRACE) at
# throughput.ts's engine shape beside bench/serve_compare.ts, which alternates offline runs (an LLM built
# as bench/throughput.ts builds it) with 256 streaming clients against the server, REPS times, in one
# process; then the server's step trace summarized per serve rep (bench/serve_trace.ts). Logs in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
[ -n "${LLMRT_CACHE_DIR:-}" ] || { source .gpucuda/boot.sh; export LLMRT_CACHE_DIR=/tmp/llmrt-cache; }
M=${M:-/tmp/hfmodels/llama-3.2-1b}
DUR=${DUR:-8}
REPS=${REPS:-3}
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
echo "$(nproc) cores; $(lscpu | grep -E 'Model name' | head -1 | sed 's/  */ /g'); bun $(bun --version)"
stamp serve
LLMRT_STEP_TRACE="$OUT/trace.json" bun bin/llmrt.ts serve --model "$M" --backend cuda --max-batch-size 256 --port 8000 --served-model-name llama \
  --max-seq-len 288 --max-num-tokens 32768 --kv-cache-free-gpu-memory-fraction 0.3 ${SERVE_ARGS:-} > "$OUT/serve.log" 2>&1 &
spid=$!
stamp compare
timeout $((REPS * (DUR + 8) + 40)) bun bench/serve_compare.ts --model "$M" --url http://127.0.0.1:8000 --served-model-name llama \
  --requests 256 --input 128 --output 128 --reps "$REPS" --duration "$DUR" > "$OUT/compare.log" 2>&1
echo "compare exit $?"
grep -v "^WINDOW" "$OUT/compare.log" | tail -12
stamp sigterm
kill -TERM $spid
timeout 20 tail --pid=$spid -f /dev/null
wait $spid
echo "serve exit $?"
tail -3 "$OUT/serve.log"
w=$(grep "^WINDOW" "$OUT/compare.log" | awk '{print $2":"$3}' | paste -sd,)
[ -f "$OUT/trace.json" ] && [ -n "$w" ] && timeout 20 bun bench/serve_trace.ts "$OUT/trace.json" --windows "$w"
stamp done
