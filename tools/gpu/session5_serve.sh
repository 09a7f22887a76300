#!/usr/bin/env bash
# Session 5's serve-vs-offline run on one H200 (issue 13), a batch job (tools/gpu/queue_job.sh NAME this BUDGET llama-3.2-1b):
# `llmrt serve` (the executor as the CLI picks it: a Web Worker on a GPU; with LLMRT_STEP_TRACE) at
# throughput.ts's engine shape, one server per entry of DELAYS (its --admission-delay-steps; ports 8000, 8001, ...),
# beside bench/serve_compare.ts, which alternates offline runs (an LLM built as bench/throughput.ts builds it) with
# 256 streaming clients against each server, REPS times, in one process; then each server's step trace summarized
# per serve run (bench/serve_trace.ts). Logs in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
[ -n "${LLMRT_CACHE_DIR:-}" ] || { source .gpucuda/boot.sh; export LLMRT_CACHE_DIR=/tmp/llmrt-cache; }
M=${M:-/tmp/hfmodels/llama-3.2-1b}
DUR=${DUR:-8}
REPS=${REPS:-3}
DELAYS=${DELAYS:-0}
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
echo "$(nproc) cores; $(lscpu | grep -E 'Model name' | head -1 | sed 's/  */ /g'); bun $(bun --version)"
nd=$(wc -w <<< "$DELAYS")
frac=$(python3 -c "print(round(0.6 / $nd, 3))")
pids=() urls=()
port=8000
for d in $DELAYS; do
  stamp "serve :$port --admission-delay-steps $d"
  LLMRT_STEP_TRACE="$OUT/trace_$port.json" bun bin/llmrt.ts serve --model "$M" --backend cuda --max-batch-size 256 --port $port --served-model-name llama \
    --max-seq-len 288 --max-num-tokens 32768 --kv-cache-free-gpu-memory-fraction "$frac" --admission-delay-steps "$d" ${SERVE_ARGS:-} > "$OUT/serve_$port.log" 2>&1 &
  pids+=($!) urls+=("http://127.0.0.1:$port")
  port=$((port + 1))
done
stamp compare
timeout $((REPS * nd * (DUR + 8) + 50)) bun bench/serve_compare.ts --model "$M" --url "$(IFS=,; echo "${urls[*]}")" --served-model-name llama \
  --requests 256 --input 128 --output 128 --reps "$REPS" --duration "$DUR" > "$OUT/compare.log" 2>&1
echo "compare exit $?"
grep -v "^WINDOW" "$OUT/compare.log" | tail -$((REPS * (nd + 1) + nd + 3))
stamp sigterm
for p in "${pids[@]}"; do kill -TERM "$p"; done
for i in "${!pids[@]}"; do
  timeout 20 tail --pid="${pids[$i]}" -f /dev/null
  wait "${pids[$i]}"
  echo "serve ${urls[$i]} exit $?: $(tail -1 "$OUT/serve_$((8000 + i)).log")"
done
for i in "${!urls[@]}"; do
  p=$((8000 + i))
  w=$(grep "^WINDOW ${urls[$i]} " "$OUT/compare.log" | awk '{print $3":"$4}' | paste -sd,)
  echo "-- trace of ${urls[$i]}"
  [ -f "$OUT/trace_$p.json" ] && [ -n "$w" ] && timeout 20 bun bench/serve_trace.ts "$OUT/trace_$p.json" --windows "$w"
done
stamp done
