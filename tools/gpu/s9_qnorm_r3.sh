#!/usr/bin/env bash
# Session 9 qnorm r3 (issue 12, H200, 60 s): llama-3.1-8b AWQ g128 batch-1 decode with quantTailNorm on / off beside
# the bf16 engine in the same process (quant_gemv_fused_addnorm + _rs; each run's tok/s printed as measured, "on" first).
# Then, if time is left, tests/gpu/quant_gemm.test.ts (now with 33..40-sequence steps: the QM_WT64=2 64-row tiles).
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
H=/tmp/hfmodels
nvidia-smi --query-gpu=name --format=csv,noheader
stamp pack8b
[ -f $H/llama-3.1-8b-awq/config.json ] || timeout 16 python3 tools/quant-packers/pack_awq_torch.py --model $H/llama-3.1-8b --out $H/llama-3.1-8b-awq --format awq > "$OUT/pack8b.log" 2>&1
echo "pack rc $?"
stamp e2e8b
left=$((58 - (SECONDS - t0)))
timeout "$left" bun bench/quant_e2e.ts --model $H/llama-3.1-8b --decode 128 --algos "" --prequantized $H/llama-3.1-8b-awq --no-ref \
  --ab quantTailNorm --ab-reps 1 --ab-on-first > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\||copy|rror|OK|MISMATCH|tok/s" "$OUT/e2e8b.log" | cut -c1-900 | head -10
left=$((58 - (SECONDS - t0)))
if [ "$left" -gt 10 ]; then
  stamp "quant_gemm GPU test"
  timeout "$left" bun test --timeout 600000 tests/gpu/quant_gemm.test.ts > "$OUT/quant_gemm.log" 2>&1
  echo "rc $?"
  grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail)|rror" "$OUT/quant_gemm.log" | cut -c1-200 | head -8
fi
stamp done
