#!/usr/bin/env bash
# Session 5 throughput, round 2 (llama-3.2-1b): decode_attention_batch checked vs float64 and timed beside
# decode_attention (tools/cuda-kernel-check/decode_attention_batch.py), then 64 x (128, 128) before
# (LLMRT_BATCH_ATTENTION=0) and after, greedy ids of the two runs compared.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stamp kernel-check
timeout 60 python3 tools/cuda-kernel-check/decode_attention_batch.py --out "$OUT" --quick > "$OUT/dab.log" 2>&1
echo "rc $?"
grep -v "^  ok  " "$OUT/dab.log" | grep -v -i warn | tail -25
grep -c "^  ok  " "$OUT/dab.log"
M=/tmp/hfmodels/llama-3.2-1b
for run in before after; do
  stamp "throughput 64 $run"
  if [ $run = before ]; then export LLMRT_BATCH_ATTENTION=0; P=""; else unset LLMRT_BATCH_ATTENTION; P=--profile-host; fi
  LLMRT_BENCH_IDS=$OUT/ids_$run.json LLMRT_BENCH_JSON=$OUT/t64_$run.json timeout 80 bun bench/throughput.ts --model $M --requests 64 --input 128 --output 128 $P > "$OUT/t64_$run.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t64_$run.log" | grep -E "llmrt:|host share|^\| [0-9]|decode_attention|cublas|gemm|add_rmsnorm|silu" | head -30
done
unset LLMRT_BATCH_ATTENTION
python3 - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]
try:
    a = json.load(open(f"{o}/ids_before.json")); b = json.load(open(f"{o}/ids_after.json"))
except Exception as e:
    print("ids compare: missing", e); sys.exit(0)
pre = []
for x, y in zip(a, b):
    n = 0
    while n < min(len(x), len(y)) and x[n] == y[n]:
        n += 1
    pre.append(n)
pre.sort()
print(f"greedy ids before vs after: {sum(p == len(a[0]) for p in pre)}/{len(pre)} requests identical over {len(a[0])} tokens; common prefix min {pre[0]} median {pre[len(pre)//2]}")
PY
stamp done
