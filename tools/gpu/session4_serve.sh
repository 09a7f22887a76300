#!/usr/bin/env bash
# Session 4's serve-overhead run on one H200 (carry .gpucuda): bench/throughput.ts at 256 × (128 in,
# 128 out) beside `llmrt serve` under 256 streaming clients at the same lengths and the same greedy
# sampling and the same engine shape as throughput.ts builds (--max-batch-size 256, --max-seq-len 288,
# --max-num-tokens 32768 = 256 × 128: all prompts prefill in one step), the executor as the CLI picks
# it (EXECUTORS="auto", a Web Worker on a GPU; EXECUTORS="auto inprocess" adds the in-process figure),
# clients in their own process. Random llama-3.2-1b with a synthetic word-level tokenizer (made once:
# skipped when $M/config.json exists). ~60 s with the model in place. Logs in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
DUR=${DUR:-10}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
M=/tmp/hfmodels/llama-3.2-1b
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stamp model
if [ ! -f "$M/config.json" ]; then
  timeout 60 python3 .gpucuda/hf_reference.py make-model --preset llama-3.2-1b --out "$M" > "$OUT/model.log" 2>&1 || tail -3 "$OUT/model.log"
fi
[ -f "$M/tokenizer.json" ] || python3 tools/gpu/synthetic_tokenizer.py "$M" 128256
nproc; lscpu | grep -E "Model name" | head -1
stamp throughput
timeout 60 bun bench/throughput.ts --model "$M" --requests 256 --input 128 --output 128 > "$OUT/throughput.log" 2>&1
grep -E "llmrt:|model|rror" "$OUT/throughput.log" | head -4
for ex in ${EXECUTORS:-auto}; do
  stamp "serve --executor $ex"
  bun bin/llmrt.ts serve --model "$M" --backend cuda --max-batch-size 256 --port 8000 --served-model-name llama --max-seq-len "${SEQ:-288}" \
    --max-num-tokens "${MNT:-32768}" --executor "$ex" > "$OUT/serve_$ex.log" 2>&1 &
  spid=$!
  for _ in $(seq 1 120); do curl -sf http://127.0.0.1:8000/health > /dev/null && break; sleep 0.5; done
  stamp "listening"
  timeout $((DUR + 25)) bun bench/serve_load.ts --url http://127.0.0.1:8000 --served-model-name llama --concurrency 256 --input-len 128 \
    --min-tokens 128 --max-tokens 128 --temperature 0 --duration "$DUR" > "$OUT/load_$ex.log" 2>&1
  tail -8 "$OUT/load_$ex.log"
  kill -TERM $spid
  wait $spid
  echo "serve exit $?"
  tail -2 "$OUT/serve_$ex.log"
done
stamp done
