#!/usr/bin/env bash
# Session 7 batchattn, round 3 (H200): end to end with decode_attention_batch2 as the default vs LLMRT_BATCH_ATTENTION2=0
# (session 6's decode_attention_batch): llama-3.1-8b 512 x (128,128) and llama-3.2-1b 64 x (128,128), greedy ids compared;
# then tests/gpu/batch_attention2.test.ts (bf16 and FP8 caches vs the CPU session); then the kernel checks of the defaults.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
run() { # NAME MODEL REQUESTS LIMIT [ARGS...]
  local name=$1 m=$2 n=$3 lim=$4
  shift 4
  stamp "throughput $name"
  LLMRT_BENCH_IDS="$OUT/ids_$name.json" LLMRT_BENCH_JSON="$OUT/t_$name.json" timeout "$lim" bun bench/throughput.ts --model "$m" --requests "$n" --input 128 --output 128 "$@" > "$OUT/t_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t_$name.log" | grep -E "llmrt:|Error|error|NaN" | head -4
}
M1=/tmp/hfmodels/llama-3.2-1b
M8=/tmp/hfmodels/llama-3.1-8b
run 8b_512 $M8 512 35
LLMRT_BATCH_ATTENTION2=0 run 8b_512_s6 $M8 512 35
run 1b_64 $M1 64 20
LLMRT_BATCH_ATTENTION2=0 run 1b_64_s6 $M1 64 20
python3 - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]
for x, y in (("8b_512_s6", "8b_512"), ("1b_64_s6", "1b_64")):
    try:
        a, b = (json.load(open(f"{o}/ids_{n}.json")) for n in (x, y))
        pre = sorted(next((i for i in range(min(len(p), len(q))) if p[i] != q[i]), min(len(p), len(q))) for p, q in zip(a, b))
        print(f"greedy ids {x} vs {y}: {sum(p == len(a[0]) for p in pre)}/{len(pre)} identical; common prefix min {pre[0]} median {pre[len(pre)//2]}")
    except Exception as e:
        print(f"ids compare {x} vs {y} failed", e)
for n in ("8b_512", "8b_512_s6", "1b_64", "1b_64_s6"):
    try:
        r = json.load(open(f"{o}/t_{n}.json"))
        print(n, f"{r['outputTps']:.1f} output tok/s, {r['seconds']:.3f} s")
    except Exception as e:
        print(n, "no json", e)
PY
stamp "tests/gpu/batch_attention2.test.ts"
timeout 90 bun test tests/gpu/batch_attention2.test.ts > "$OUT/gpu_test.log" 2>&1
echo "rc $?"
grep -E "pass|fail|batch2 |error|Error" "$OUT/gpu_test.log" | head -20
stamp "kernel checks (defaults)"
timeout 60 python3 tools/cuda-kernel-check/decode_attention_batch2.py --only check,fp8 --out "$OUT" > "$OUT/kernels.log" 2>&1
echo "rc $?"
grep -E "FAIL|SUMMARY" "$OUT/kernels.log" | head -20
stamp done
