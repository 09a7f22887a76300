#!/usr/bin/env bash
# Shared helpers of the device job scripts (source it from a job; batch.sh has set up Bun, the checkpoints in
# /tmp/hfmodels and LLMRT_CACHE_DIR). Each helper logs to $OUT and prints a few summary lines.
#   stamp MSG                              — "== [seconds since sourcing] MSG"
#   gpu_suite NAME LIMIT [FILES...]        — bun test (default: tests/gpu but cuda_session / nccl_tp2, + tests/quant_cuda)
#   thr NAME MODEL REQUESTS LIMIT [ARGS]   — bench/throughput.ts N × (128,128); ids to $OUT/ids_NAME.json, numbers to t_NAME.json
#   same_ids A B                           — how many requests of two thr runs generated identical greedy ids
#   thr_summary NAME...                    — output tok/s of thr runs
#   first_run                              — the README main job with an empty kernel + engine cache, then cached
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
mkdir -p ../shared && [ -n "${LLMRT_MODELS:-}" ] && ln -sfn "$LLMRT_MODELS" ../shared/models 2> /dev/null
M1=/tmp/hfmodels/llama-3.2-1b
M8=/tmp/hfmodels/llama-3.1-8b
_t0=$SECONDS
stamp() { echo "== [$((SECONDS - _t0)) s] $*"; }

gpu_suite() {
  local name=$1 lim=$2
  shift 2
  local files=("$@")
  [ ${#files[@]} -gt 0 ] || mapfile -t files < <(ls tests/gpu/*.test.ts | grep -v -e cuda_session -e nccl_tp2; echo tests/quant_cuda.test.ts)
  stamp "bun test: $name"
  timeout "$lim" bun test --timeout 600000 "${files[@]}" > "$OUT/$name.log" 2>&1
  echo "rc $?"
  grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|^Ran " "$OUT/$name.log" | cut -c1-300 | head -24
}

thr() {
  local name=$1 m=$2 n=$3 lim=$4
  shift 4
  stamp "throughput $name ($n x (128,128) $*)"
  LLMRT_BENCH_IDS="$OUT/ids_$name.json" LLMRT_BENCH_JSON="$OUT/t_$name.json" timeout "$lim" bun bench/throughput.ts --model "$m" --requests "$n" --input 128 --output 128 "$@" > "$OUT/t_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t_$name.log" | grep -E "llmrt:|Error|error|NaN" | head -4
}

same_ids() {
  python3 - "$OUT" "$1" "$2" << 'PY'
import json, sys
o, x, y = sys.argv[1:]
try:
    a, b = (json.load(open(f"{o}/ids_{n}.json")) for n in (x, y))
    pre = sorted(next((i for i in range(min(len(p), len(q))) if p[i] != q[i]), min(len(p), len(q))) for p, q in zip(a, b))
    print(f"greedy ids {x} vs {y}: {sum(p == len(a[0]) for p in pre)}/{len(pre)} identical; common prefix min {pre[0]} median {pre[len(pre)//2]}")
except Exception as e:
    print(f"ids compare {x} vs {y} failed", e)
PY
}

thr_summary() {
  python3 - "$OUT" "$@" << 'PY'
import json, sys
o = sys.argv[1]
for n in sys.argv[2:]:
    try:
        r = json.load(open(f"{o}/t_{n}.json"))
        print(n, f"{r['outputTps']:.1f} output tok/s, {r['seconds']:.3f} s")
    except Exception as e:
        print(n, "no json", e)
PY
}

first_run() {
  stamp "first run (empty kernel + engine cache)"
  local c=/tmp/llmrt-firstrun-cache
  rm -rf $c
  { local s e
    s=$(date +%s%N); LLMRT_CACHE_DIR=$c timeout 40 bun bin/llmrt.ts generate --max-tokens 64 --temperature 0; e=$(date +%s%N)
    echo "empty cache: $(((e - s) / 1000000)) ms"
    s=$(date +%s%N); LLMRT_CACHE_DIR=$c timeout 40 bun bin/llmrt.ts generate --max-tokens 64 --temperature 0 > /dev/null; e=$(date +%s%N)
    echo "cached: $(((e - s) / 1000000)) ms"; } > "$OUT/firstrun.log" 2>&1
  grep -E "empty cache|cached:" "$OUT/firstrun.log"
}
