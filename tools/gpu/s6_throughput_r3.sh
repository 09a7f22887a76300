#!/usr/bin/env bash
# Session 6 throughput, round 3 (llama-3.2-1b, H200), main with overlapped decode steps and decode_attention_batch on by
# default: 64 x (128, 128) default (--profile-host) vs --no-overlap, 256 x (128, 128) default vs --no-overlap (greedy ids
# compared); bench/batch_divergence.ts at a ~2000-key span (batch invariance of decode steps of 1-8 sequences, bucket 1
# vs 8); `llmrt serve` (executor in a Web Worker, overlapped steps) vs offline, one 5 s rep (tools/gpu/session5_serve.sh).
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
M=/tmp/hfmodels/llama-3.2-1b
run() { # NAME REQUESTS LIMIT [ARGS...]
  local name=$1 n=$2 lim=$3
  shift 3
  stamp "throughput $name"
  LLMRT_BENCH_IDS="$OUT/ids_$name.json" LLMRT_BENCH_JSON="$OUT/t_$name.json" timeout "$lim" bun bench/throughput.ts --model $M --requests "$n" --input 128 --output 128 "$@" > "$OUT/t_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t_$name.log" | grep -E "llmrt:|host share|run of|executor clocks|^\| [0-9.]+ ms|Error|error" | head -8
  grep -E "^  [a-z_0-9]+ +[0-9]+ ×" "$OUT/t_$name.log" | head -10
}
run 64 64 40 --profile-host
run 64_plain 64 25 --no-overlap
run 256 256 25
run 256_plain 256 25 --no-overlap
python3 - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]
for x, y in (("64_plain", "64"), ("256_plain", "256")):
    try:
        a, b = (json.load(open(f"{o}/ids_{n}.json")) for n in (x, y))
        pre = sorted(next((i for i in range(min(len(p), len(q))) if p[i] != q[i]), min(len(p), len(q))) for p, q in zip(a, b))
        print(f"greedy ids {x} vs {y}: {sum(p == len(a[0]) for p in pre)}/{len(pre)} identical; common prefix min {pre[0]} median {pre[len(pre)//2]}")
    except Exception as e:
        print(f"ids compare {x} vs {y} failed", e)
PY
stamp "batch divergence 8 x 2000, 2 steps (long span)"
LLMRT_BENCH_JSON=$OUT/divergence_long.json timeout 40 bun bench/batch_divergence.ts --model $M --requests 8 --input 2000 --steps 2 > "$OUT/divergence_long.log" 2>&1
echo "rc $?"
grep -v -i warn "$OUT/divergence_long.log" | tail -14
stamp "serve vs offline (overlapped steps)"
DUR=5 REPS=1 timeout 60 bash tools/gpu/session5_serve.sh > "$OUT/serve_job.log" 2>&1
echo "rc $?"
grep -E "rep|offline|serve|exit|KV|error|Error" "$OUT/serve_job.log" | grep -v "^WINDOW" | head -14
stamp done
