#!/usr/bin/env bash
# Session 5 throughput, round 2 (llama-3.2-1b): decode_attention_batch and skinny_gemm checked vs float64 and timed
# beside decode_attention / cuBLAS (tools/cuda-kernel-check/*.py), then 64 x (128, 128): main's kernels
# (LLMRT_BATCH_ATTENTION=0 LLMRT_SKINNY_GEMM=0), + batch attention, + skinny GEMM (--profile-host); greedy ids compared.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
for chk in decode_attention_batch skinny_gemm; do
  stamp "kernel check $chk"
  timeout 35 python3 tools/cuda-kernel-check/$chk.py --out "$OUT" --quick > "$OUT/$chk.log" 2>&1
  echo "rc $?"
  grep -v "^  ok  " "$OUT/$chk.log" | grep -v -i warn | tail -22
  echo "ok lines: $(grep -c '^  ok  ' "$OUT/$chk.log")"
done
M=/tmp/hfmodels/llama-3.2-1b
for run in main attn all; do
  stamp "throughput 64 $run"
  case $run in
    main) export LLMRT_BATCH_ATTENTION=0 LLMRT_SKINNY_GEMM=0; P="" ;;
    attn) export LLMRT_BATCH_ATTENTION=1 LLMRT_SKINNY_GEMM=0; P="" ;;
    all) export LLMRT_BATCH_ATTENTION=1 LLMRT_SKINNY_GEMM=1; P=--profile-host ;;
  esac
  LLMRT_BENCH_IDS=$OUT/ids_$run.json LLMRT_BENCH_JSON=$OUT/t64_$run.json timeout 45 bun bench/throughput.ts --model $M --requests 64 --input 128 --output 128 $P > "$OUT/t64_$run.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t64_$run.log" | grep -E "llmrt:|host share|^\| [0-9]|Error|error" | head -20
  grep -E "^  [a-z_0-9]+ +[0-9]+ ×" "$OUT/t64_$run.log" | head -14
done
python3 - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]
def load(n):
    try:
        return json.load(open(f"{o}/ids_{n}.json"))
    except Exception:
        return None
a = load("main")
for n in ("attn", "all"):
    b = load(n)
    if a is None or b is None:
        print(f"ids main vs {n}: missing"); continue
    pre = sorted(next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y))) for x, y in zip(a, b))
    print(f"greedy ids main vs {n}: {sum(p == len(a[0]) for p in pre)}/{len(pre)} requests identical over {len(a[0])} tokens; common prefix min {pre[0]} median {pre[len(pre)//2]}")
PY
stamp done
