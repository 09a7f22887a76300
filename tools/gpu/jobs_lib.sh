#!/usr/bin/env bash
# Shared helpers of the device job scripts (source it from a job; batch.sh has set up Bun, the checkpoints in
# /tmp/hfmodels and LLMRT_CACHE_DIR). Each helper logs to $OUT and prints a few summary lines.
#   stamp MSG                              — "== [seconds since sourcing] MSG"
#   gpu_suite NAME LIMIT [FILES...]        — bun test (default: tests/gpu but cuda_session / nccl_tp2, + tests/quant_cuda)
#   gpu_suite_par NAME LIMIT [K]           — the same default files as K (default 3) bun test processes at once on the one
#                                            GPU (the files dealt out by their session-9 durations; ~3x faster), summed
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

gpu_suite_par() {
  local name=$1 lim=$2 k=${3:-3} i
  stamp "bun test in $k processes: $name"
  mapfile -t groups < <(python3 - "$k" << 'PY'
import glob, sys
k = int(sys.argv[1])
# seconds a file took in session 9's closing run (unknown files: 4 s); the slowest first, each to the lightest group
known = {"fp8_decode_attention": 42, "fp8_kv": 19, "lowbit_cuda": 18, "batch_attention2": 16,
         "quant_gemm": 10, "gemm": 6, "nccl": 5, "graph_splits": 5}
files = [f for f in sorted(glob.glob("tests/gpu/*.test.ts")) if "cuda_session" not in f and "nccl_tp2" not in f]
files.append("tests/quant_cuda.test.ts")
w = lambda f: known.get(f.split("/")[-1].removesuffix(".test.ts"), 4)
groups = [[0, []] for _ in range(k)]
for f in sorted(files, key=w, reverse=True):
    g = min(groups, key=lambda x: x[0]); g[0] += w(f); g[1].append(f)
for g in groups: print(" ".join(g[1]))
PY
  )
  local pids=()
  for i in "${!groups[@]}"; do
    # shellcheck disable=SC2086
    (timeout "$lim" bun test --timeout 600000 ${groups[$i]} > "$OUT/${name}_$i.log" 2>&1; echo "rc $?" >> "$OUT/${name}_$i.log") &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  for i in "${!groups[@]}"; do echo "group $i: $(tail -1 "$OUT/${name}_$i.log")"; done
  cat "$OUT/${name}"_*.log | grep -E "^\(fail" | cut -c1-300 | head -12
  cat "$OUT/${name}"_*.log | grep -E "^ *[0-9]+ (pass|fail|skip)$" | awk '{n[$2] += $1} END {for (k in n) print n[k], k}'
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
