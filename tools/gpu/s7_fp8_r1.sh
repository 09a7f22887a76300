#!/usr/bin/env bash
# Session 7, FP8 (issue 14), round r1 on one H200 (a job of the batched device queue; models llama-3.2-1b llama-3.1-8b):
# pack both random-weight checkpoints with tools/quant-packers/pack_fp8_torch.py (compressed-tensors FP8: static
# per-tensor weights + activations, FP8 KV scales from a transformers forward), check that llmrt's engines hold the
# packer's bytes, FP8 GEMM timings (fast accumulation on/off), 8B 512 x (128,128) FP8 + FP8 KV (with the host
# profile of the 512-sequence decode step) vs bf16, batch-1 decode + TTFT 2048 (1B, 8B; FP8 with and without FP8 KV).
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
H=/tmp/hfmodels
M1=$H/llama-3.2-1b M8=$H/llama-3.1-8b
P=/tmp/fp8pack
P1=$P/l1b P8=$P/l8b
mkdir -p $P
nokv() { # SRC DST: the same checkpoint, config without the kv_cache_scheme (FP8 weights, bf16 KV)
  mkdir -p "$2"
  for f in "$1"/*; do case $(basename "$f") in config.json | fp8_pack_ref.json) ;; *) ln -sf "$f" "$2/" ;; esac; done
  python3 -c "import json,sys;c=json.load(open(sys.argv[1]));c['quantization_config']['kv_cache_scheme']=None;json.dump(c,open(sys.argv[2],'w'))" "$1/config.json" "$2/config.json"
}
stamp "pack 8B and 1B (torch, GPU)"
(timeout 110 python3 tools/quant-packers/pack_fp8_torch.py --model $M8 --out $P8 > "$OUT/pack8b.log" 2>&1; echo "pack8b rc $?" >> "$OUT/pack8b.log") &
pk8=$!
timeout 60 python3 tools/quant-packers/pack_fp8_torch.py --model $M1 --out $P1 > "$OUT/pack1b.log" 2>&1
echo "pack1b rc $?"; tail -2 "$OUT/pack1b.log" | cut -c1-300
nokv $P1 $P1-nokv
stamp "check 1B engine vs packer (all layers; CPU, while the 8B pack runs)"
timeout 60 bun tools/quant-packers/check_fp8_pack.ts --model $P1 > "$OUT/check1b.log" 2>&1
echo "check1b rc $?"; head -8 "$OUT/check1b.log" | cut -c1-300
wait $pk8
tail -3 "$OUT/pack8b.log" | cut -c1-400
nokv $P8 $P8-nokv
ls -la $P8 | head; du -sh $P8
stamp "GPU test: fused FP8 quantization kernels vs unfused (bits)"
timeout 60 bun test tests/gpu/fp8_fused_quant.test.ts tests/gpu/fp8_fused.test.ts tests/gpu/fp8_gemm_buckets.test.ts > "$OUT/fq_test.log" 2>&1
echo "rc $?"; grep -E "^\(pass|^\(fail|rror|AssertionError|bucket algorithms|differ from" "$OUT/fq_test.log" | head -16 | cut -c1-300
stamp "FP8 GEMMs"
LLMRT_BENCH_JSON=$OUT/fp8_gemm.json timeout 45 bun bench/fp8_gemm.ts --models 8b --ms 512,2048,8192 --invariant > "$OUT/fp8_gemm.log" 2>&1
echo "fp8_gemm rc $?"; grep -E "ceilings|M=|rror|bucketed:" "$OUT/fp8_gemm.log" | cut -c1-700
stamp "FP8 decode GEMV chains per compile variant (plain vs _pdl + PDL)"
timeout 45 bun bench/fp8_gemv_tune.ts --models 8b,1b --variants "default;-DFG_L2PF=1;-DFG_U=2" > "$OUT/gemv_tune.log" 2>&1
echo "rc $?"; grep -E "copy|^\| [18]b|rror" "$OUT/gemv_tune.log" | cut -c1-200
tp() { # NAME LIMIT MODEL [ARGS...]
  local name=$1 lim=$2 m=$3
  shift 3
  stamp "throughput $name"
  LLMRT_BENCH_IDS="$OUT/ids_$name.json" LLMRT_BENCH_JSON="$OUT/t_$name.json" timeout "$lim" bun bench/throughput.ts --model "$m" --requests 512 --input 128 --output 128 "$@" > "$OUT/t_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t_$name.log" | grep -E "llmrt:|^model|host share|executor clocks|^\| [0-9]|rror" | head -12 | cut -c1-300
  grep -E "^  [a-z_0-9]+ +[0-9]+ ×" "$OUT/t_$name.log" | head -14
}
tp 8b_fp8kv 55 $P8 --profile-host
LLMRT_FP8_FAST_ACCUM=1 LLMRT_FP8_FUSED_QUANT=1 LLMRT_FP8_BUCKETS=1 tp 8b_fp8kv_fast 45 $P8
tp 8b_bf16 40 $M8
python3 - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]
try:
    a, b = (json.load(open(f"{o}/ids_{n}.json")) for n in ("8b_fp8kv", "8b_fp8kv_fast"))
    pre = sorted(next((i for i in range(min(len(p), len(q))) if p[i] != q[i]), min(len(p), len(q))) for p, q in zip(a, b))
    print(f"greedy ids FP8+KV default vs fast-accum+fused-quant: {sum(p == len(a[0]) for p in pre)}/{len(pre)} identical; common prefix min {pre[0]} median {pre[len(pre)//2]}")
except Exception as e:
    print("ids compare failed", e)
PY
stamp "batch 1 + TTFT 2048, 8B (bf16, FP8 + FP8 KV, FP8)"
timeout 70 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8,$P8-nokv --variants default,pdl,fast --decode 128 --ttft 2048 > "$OUT/e2e8b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |rror" "$OUT/e2e8b.log" | cut -c1-420
stamp "batch 1 + TTFT 2048, 1B"
timeout 35 bun bench/fp8_e2e.ts --model $M1 --algos none --packed $P1,$P1-nokv --variants default,pdl,fast --decode 128 --ttft 2048 > "$OUT/e2e1b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |rror" "$OUT/e2e1b.log" | cut -c1-420
stamp done
