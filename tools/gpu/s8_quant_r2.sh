#!/usr/bin/env bash
# Ran at s8/quant 0ae59ac (the async kernels and their ASYNC/QA_ bench variants were removed afterwards).
# Session 8 quant r2 (issue 12): quant_gemv_async* (each warp streams its weights through a cp.async ring of QA_D
# slots, in flight across the RMSNorm prologue; the plan's default) vs quant_gemv_fused*: bits vs fused (8B / 1B
# shapes, u4 g128 zp, u4 g256, u8 per-channel, modes 0/2/3, plain and _norm), llama-3.1-8b layer linears in µs and
# % of the copy measured in the same process, float64 GPU test, then llama-3.1-8b AWQ g128 end to end vs bf16.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
H=/tmp/hfmodels
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
stamp tune
timeout "${TUNE_S:-30}" bun bench/quant_gemv_tune.ts --only 8b \
  --variants "${VARIANTS:-FASTNORM=0;ASYNC;ASYNC,QA_D=3;ASYNC,QA_D=2;ASYNC,QA_D=3,QA_MINB=5}" \
  --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "same bits|close|DIFFERENT|rror|ceiling|lm_head|layer" "$OUT/tune.log" | cut -c1-330 | head -120
stamp f64
timeout "${TEST_S:-15}" bun test --timeout 600000 tests/quant_cuda.test.ts -t "quant_gemv_(async|fused) " > "$OUT/quant_cuda.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)|rror" "$OUT/quant_cuda.log" | cut -c1-300 | head -24
stamp pack8b
if [ ! -f $H/llama-3.1-8b-awq/config.json ]; then
  timeout "${PACK_S:-25}" python3 tools/quant-packers/pack_awq_torch.py --model $H/llama-3.1-8b --out $H/llama-3.1-8b-awq --format awq > "$OUT/pack8b.log" 2>&1
  echo "pack rc $?: $(tail -1 "$OUT/pack8b.log" | cut -c1-300)"
fi
stamp e2e8b
left=$((87 - (SECONDS - t0)))
[ "$left" -gt 25 ] || { echo "no time left for e2e ($left s)"; stamp done; exit 0; }
timeout "$left" bun bench/quant_e2e.ts --model $H/llama-3.1-8b --decode 128 --algos "" --prequantized $H/llama-3.1-8b-awq --no-ref > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\||copy|rror|OK|MISMATCH|tok/s" "$OUT/e2e8b.log" | cut -c1-900 | head -14
stamp done
