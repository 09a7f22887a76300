#!/usr/bin/env bash
# Session 9 qnorm r2 (issue 12, H200, 75 s). A (redesigned after r1: the residual GEMV writes bf16(r · w) and per-tile
# sums of squares, the next GEMV scales its sums by the rms; no last-block tail): GPU tests vs float64 / bits, one
# llama-3.1-8b layer "1 fused" vs "1 tail" vs plain, llama-3.2-1b AWQ end to end quantTailNorm off/on vs bf16.
# B (QM_WT64=2 QM_SA64=1 now the default): llama-3.2-1b 64 x (128,128) bf16 vs W4A16.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
H=/tmp/hfmodels
M1=$H/llama-3.2-1b
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "A: GPU tests (fused, addnorm, rs vs float64 / bits)"
timeout 20 bun test --timeout 600000 tests/quant_cuda.test.ts -t "quant_gemv_fused" > "$OUT/quant_cuda.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)|rror" "$OUT/quant_cuda.log" | cut -c1-220 | head -20
stamp "A: tune (tail vs _norm, 8B layer)"
timeout 17 bun bench/quant_gemv_tune.ts --only 8b --variants "FASTNORM=0;MINB=4;LOOP=1" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "tail|DIFFERENT|rror|ceiling|layer" "$OUT/tune.log" | cut -c1-300 | head -14
stamp "A: pack 1B AWQ + e2e 1B quantTailNorm off/on"
timeout 6 python3 tools/quant-packers/pack_awq_torch.py --model $M1 --out $H/llama-3.2-1b-awq --format awq > "$OUT/pack1b.log" 2>&1
echo "pack rc $?"
timeout 16 bun bench/quant_e2e.ts --model $M1 --decode 128 --algos "" --prequantized $H/llama-3.2-1b-awq --no-ref \
  --ab quantTailNorm --ab-reps 1 > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\||copy|rror|OK|MISMATCH" "$OUT/e2e1b.log" | cut -c1-600 | head -8
thr() { # NAME LIMIT [ARGS...]
  local name=$1 lim=$2
  shift 2
  stamp "B: throughput $name"
  LLMRT_BENCH_JSON="$OUT/t_$name.json" timeout "$lim" bun bench/throughput.ts --model $M1 --requests 64 --input 128 --output 128 "$@" > "$OUT/t_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t_$name.log" | grep -E "llmrt:|Error|error|NaN" | head -3
}
left=$((74 - (SECONDS - t0)))
[ "$left" -gt 16 ] && thr w4 $((left - 5)) --quant W4A16
left=$((74 - (SECONDS - t0)))
[ "$left" -gt 4 ] && thr bf16 "$left"
stamp done
