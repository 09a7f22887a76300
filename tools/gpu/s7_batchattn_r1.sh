#!/usr/bin/env bash
# Session 7 batchattn, round 1 (H200): decode_attention_batch2 (per-warp K/V streams, bf16 and e4m3 caches) checked vs
# float64 and timed beside session 6's decode_attention_batch and the unfused FP8-KV path (copy ceiling in the same
# process); then end to end: llama-3.2-1b 64 x (128,128) and llama-3.1-8b 512 x (128,128), the default vs
# LLMRT_BATCH_ATTENTION2=1, and llama-3.2-1b with an FP8 KV cache (unfused decode attention vs batch2_fp8kv).
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stamp "kernel checks + timing"
timeout 90 python3 tools/cuda-kernel-check/decode_attention_batch2.py --quick --only check,fp8,timing,ctx --out "$OUT" > "$OUT/kernels.log" 2>&1
echo "rc $?"
grep -E "FAIL|SUMMARY|copy bandwidth| us |^==|done at|Error|error|ctx " "$OUT/kernels.log" | head -120
grep -c "^  ok" "$OUT/kernels.log"
run() { # NAME MODEL REQUESTS LIMIT [ARGS...]
  local name=$1 m=$2 n=$3 lim=$4
  shift 4
  stamp "throughput $name"
  LLMRT_BENCH_IDS="$OUT/ids_$name.json" LLMRT_BENCH_JSON="$OUT/t_$name.json" timeout "$lim" bun bench/throughput.ts --model "$m" --requests "$n" --input 128 --output 128 "$@" > "$OUT/t_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t_$name.log" | grep -E "llmrt:|tok|host share|run of|executor clocks|Error|error|NaN" | head -6
}
M1=/tmp/hfmodels/llama-3.2-1b
M8=/tmp/hfmodels/llama-3.1-8b
run 1b_64 $M1 64 25
LLMRT_BATCH_ATTENTION2=1 run 1b_64_v2 $M1 64 25
run 1b_64_fp8kv $M1 64 25 --kv-cache-quant FP8
LLMRT_BATCH_ATTENTION2=1 run 1b_64_fp8kv_v2 $M1 64 25 --kv-cache-quant FP8
run 8b_512 $M8 512 40
LLMRT_BATCH_ATTENTION2=1 run 8b_512_v2 $M8 512 40
python3 - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]
for x, y in (("1b_64", "1b_64_v2"), ("1b_64_fp8kv", "1b_64_fp8kv_v2"), ("1b_64", "1b_64_fp8kv_v2"), ("8b_512", "8b_512_v2")):
    try:
        a, b = (json.load(open(f"{o}/ids_{n}.json")) for n in (x, y))
        pre = sorted(next((i for i in range(min(len(p), len(q))) if p[i] != q[i]), min(len(p), len(q))) for p, q in zip(a, b))
        print(f"greedy ids {x} vs {y}: {sum(p == len(a[0]) for p in pre)}/{len(pre)} identical; common prefix min {pre[0]} median {pre[len(pre)//2]}")
    except Exception as e:
        print(f"ids compare {x} vs {y} failed", e)
for n in ("1b_64", "1b_64_v2", "1b_64_fp8kv", "1b_64_fp8kv_v2", "8b_512", "8b_512_v2"):
    try:
        r = json.load(open(f"{o}/t_{n}.json"))
        print(n, {k: v for k, v in r.items() if isinstance(v, (int, float))})
    except Exception as e:
        print(n, "no json", e)
PY
stamp done
