#!/usr/bin/env bash
# Ran at s8/quant 317b16c (the staged kernels and their STAGED/QS_ bench variants were removed afterwards).
# Session 8 quant r1 (issue 12): quant_gemv_staged* (x staged once per block, u4 zero points folded out of the loop,
# pipelined weight loads) vs quant_gemv_fused* — correctness vs the fused kernel's bits (8B / 1B shapes, u4 g128 zp,
# u4 g256 sym, u8 per-channel, m 1/3/8 where they fit, modes 0/2/3, plain and _norm), one layer's linears in µs and %
# of the copy measured in the same process; then llama-3.1-8b AWQ g128 end to end (staged is the plan's default).
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
H=/tmp/hfmodels
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
stamp tune
timeout "${TUNE_S:-70}" bun bench/quant_gemv_tune.ts \
  --variants "${VARIANTS:-FASTNORM=0;STAGED;STAGED,QS_FOLD=0,QS_FOLD8=0;STAGED,QS_U=2;STAGED,QS_U=4,QS_MINB=2;STAGED,QS_PIPE=0;STAGED,QS_U=2,QS_MINB=4;STAGED,QS_T=2,QS_U=2,QS_MINB=2;STAGED,QS_SB=8,QS_MINB=2}" \
  --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "same bits|close|DIFFERENT|rror|ceiling|lm_head|layer" "$OUT/tune.log" | cut -c1-330 | head -170
stamp f64
# quant_gemv_staged* and quant_gemv_fused* vs float64 (modes 0-3, plain and _norm, m 1/2/3/8, batch invariance).
timeout "${TEST_S:-30}" bun test --timeout 600000 tests/quant_cuda.test.ts -t "quant_gemv_(staged|fused) " > "$OUT/quant_cuda.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)|rror" "$OUT/quant_cuda.log" | cut -c1-300 | head -24
[ -n "${NOE2E:-}" ] && { stamp done; exit 0; }
stamp pack8b
if [ ! -f $H/llama-3.1-8b-awq/config.json ]; then
  timeout "${PACK_S:-40}" python3 tools/quant-packers/pack_awq_torch.py --model $H/llama-3.1-8b --out $H/llama-3.1-8b-awq --format awq > "$OUT/pack8b.log" 2>&1
  echo "pack rc $?: $(tail -1 "$OUT/pack8b.log" | cut -c1-300)"
fi
stamp e2e8b
left=$((165 - (SECONDS - t0)))
[ "$left" -gt 30 ] || { echo "no time left for e2e ($left s)"; stamp done; exit 0; }
timeout "$left" bun bench/quant_e2e.ts --model $H/llama-3.1-8b --decode 128 --algos "" --prequantized $H/llama-3.1-8b-awq --no-ref > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\||copy|rror|OK|MISMATCH|tok/s" "$OUT/e2e8b.log" | cut -c1-900 | head -14
stamp done
