#!/usr/bin/env bash
# Session 6 throughput, the 8B round (H200): llama-3.1-8b bf16 512 x (128, 128) with the defaults (decode_attention_batch
# past 8 sequences, overlapped decode steps) and with --no-overlap
# greedy ids compared. One process each (the engine is read from the safetensors every time).
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
M=/tmp/hfmodels/llama-3.1-8b
run() { # NAME REQUESTS LIMIT [ARGS...]
  local name=$1 n=$2 lim=$3
  shift 3
  stamp "8b $name"
  LLMRT_BENCH_IDS="$OUT/ids_$name.json" LLMRT_BENCH_JSON="$OUT/t8b_$name.json" timeout "$lim" bun bench/throughput.ts --model $M --requests "$n" --input 128 --output 128 "$@" > "$OUT/t8b_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t8b_$name.log" | grep -E "llmrt:|model|host share|run of|executor clocks|^\| [0-9]|Error|error" | head -14
  grep -E "^  [a-z_0-9]+ +[0-9]+ ×" "$OUT/t8b_$name.log" | head -10
}
run 512_plain 512 30 --no-overlap
run 512 512 30
python3 - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]
try:
    a, b = (json.load(open(f"{o}/ids_{n}.json")) for n in ("512_plain", "512"))
    pre = sorted(next((i for i in range(min(len(p), len(q))) if p[i] != q[i]), min(len(p), len(q))) for p, q in zip(a, b))
    print(f"greedy ids not overlapped vs default (overlapped): {sum(p == len(a[0]) for p in pre)}/{len(pre)} identical; common prefix min {pre[0]} median {pre[len(pre)//2]}")
except Exception as e:
    print("ids compare failed", e)
PY
stamp done
