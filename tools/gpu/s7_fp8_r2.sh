#!/usr/bin/env bash
# Session 7, FP8 (issue 14), round r2 on one H200 (queue job; models llama-3.2-1b llama-3.1-8b): pack both checkpoints
# (tools/quant-packers/pack_fp8_torch.py, static per-tensor + FP8 KV scales); the kjv GPU tests with every FP8 option on
# against the CPU emulation, the FP8 bucket bitwise test and the fused GEMV tests (fp8_gemv1 included); 8B 512 x (128,128)
# FP8 + FP8 KV with the fast options and decode_attention_batch2 (host profile) and bf16; batch 1 + TTFT 2048 with the
# prefill profile (8B FP8 weights + bf16 KV, default vs all options); GEMV chains (plain / pdl / gemv1); 1B batch 1.
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
FAST="LLMRT_FP8_FAST_ACCUM=1 LLMRT_FP8_FUSED_QUANT=1 LLMRT_FP8_BUCKETS=1"
fast() { (export $FAST; "$@"); } # a shell function (tp) under the fast FP8 options
mkdir -p $P
nokv() { # SRC DST: the same checkpoint, config without the kv_cache_scheme (FP8 weights, bf16 KV)
  mkdir -p "$2"
  for f in "$1"/*; do case $(basename "$f") in config.json | fp8_pack_ref.json) ;; *) ln -sf "$f" "$2/" ;; esac; done
  python3 -c "import json,sys;c=json.load(open(sys.argv[1]));c['quantization_config']['kv_cache_scheme']=None;json.dump(c,open(sys.argv[2],'w'))" "$1/config.json" "$2/config.json"
}
stamp "pack 8B and 1B (torch, GPU)"
(timeout 100 python3 tools/quant-packers/pack_fp8_torch.py --model $M8 --out $P8 > "$OUT/pack8b.log" 2>&1; echo "pack8b rc $?" >> "$OUT/pack8b.log") &
pk8=$!
timeout 60 python3 tools/quant-packers/pack_fp8_torch.py --model $M1 --out $P1 > "$OUT/pack1b.log" 2>&1
echo "pack1b rc $?"; tail -1 "$OUT/pack1b.log" | cut -c1-300
nokv $P1 $P1-nokv
stamp "GPU tests (while the 8B pack runs): kjv FP8 / FP8 KV vs the CPU emulation with every FP8 option on; buckets; fused GEMVs"
env $FAST LLMRT_FP8_GEMV1=1 LLMRT_BATCH_ATTENTION2=1 timeout 80 bun test tests/gpu/fp8_cuda.test.ts tests/gpu/fp8_kv.test.ts tests/gpu/fp8_gemm_buckets.test.ts tests/gpu/fp8_fused.test.ts > "$OUT/gpu_tests.log" 2>&1
echo "rc $?"; grep -E "^\(pass|^\(fail|AssertionError|rror:|CUDA vs CPU|bucket algorithms|differ from|rel L2|fp8_gemv1" "$OUT/gpu_tests.log" | head -40 | cut -c1-300
wait $pk8
tail -2 "$OUT/pack8b.log" | cut -c1-300
nokv $P8 $P8-nokv
tp() { # NAME LIMIT MODEL [ARGS...]
  local name=$1 lim=$2 m=$3
  shift 3
  stamp "throughput $name"
  LLMRT_BENCH_IDS="$OUT/ids_$name.json" LLMRT_BENCH_JSON="$OUT/t_$name.json" timeout "$lim" bun bench/throughput.ts --model "$m" --requests 512 --input 128 --output 128 "$@" > "$OUT/t_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t_$name.log" | grep -E "llmrt:|^model|host share|executor clocks|run of|^\| [0-9]|rror" | head -14 | cut -c1-300
  grep -E "^  [a-z_0-9]+ +[0-9]+ ×|^  gemm" "$OUT/t_$name.log" | head -18
}
LLMRT_BATCH_ATTENTION2=1 fast tp 8b_fp8kv_fast_ba2 55 $P8 --profile-host
stamp "batch 1 + TTFT 2048 (prefill profile), 8B FP8 weights + bf16 KV: default vs all FP8 options"
timeout 45 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8-nokv --variants default,all --decode 128 --ttft 2048 --profile > "$OUT/e2e8b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |^  |rror" "$OUT/e2e8b.log" | cut -c1-700
tp 8b_bf16 35 $M8
stamp "FP8 decode GEMV chains (plain / pdl / gemv1)"
timeout 25 bun bench/fp8_gemv_tune.ts --models 8b,1b --variants "default;-DFG1_MINB=3" > "$OUT/gemv_tune.log" 2>&1
echo "rc $?"; grep -E "copy|^\| [18]b|rror" "$OUT/gemv_tune.log" | cut -c1-200
stamp "batch 1 + TTFT 2048, 1B FP8 weights + bf16 KV"
timeout 25 bun bench/fp8_e2e.ts --model $M1 --algos none --packed $P1-nokv --variants default,all --decode 128 --ttft 2048 > "$OUT/e2e1b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |rror" "$OUT/e2e1b.log" | cut -c1-500
stamp done
