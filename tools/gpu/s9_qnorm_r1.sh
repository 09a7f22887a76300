#!/usr/bin/env bash
# Session 9 qnorm r1 (issue 12, H200, 75 s): A. quant_gemv_fused_addnorm (the residual GEMV's last block writes the next
# RMSNorm's output; LaunchEnv.quantTailNorm): bits vs quant_gemv_fused mode 1 + rmsnorm_bf16, one llama-3.1-8b layer
# "1 fused" (today's plan) vs "1 tail" vs plain, for the defaults and U=3 / U=4,MINB=2 / RING=1 (more weight bytes in flight).
# B. quant_gemm QM_WT64=2 QM_SA64=1: kernel check vs float64 (m 64 / 128, 8B shapes) and m64 timing beside the defaults.
# A. (time left) llama-3.2-1b AWQ end to end, quantTailNorm off/on, vs bf16.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
H=/tmp/hfmodels
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "A: tune (addnorm bits + 8B layer)"
timeout 27 bun bench/quant_gemv_tune.ts --only 8b --variants "FASTNORM=0;U=3;U=4,MINB=2;RING=1;RING=1,U=3;RING=1,U=4,MINB=2" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "addnorm|DIFFERENT|rror|ceiling|layer" "$OUT/tune.log" | cut -c1-300 | head -30
stamp "B: quant_gemm QM_WT64=2 QM_SA64=1 check + m64 time"
timeout 21 python3 tools/cuda-kernel-check/quant_gemm.py --out "$OUT/qgemm" --only check,variants --models 8b --ms 64,128 --time-ms 64 \
  --defines QM_WT64=2,QM_SA64=1 --variants ";QM_WT64=2,QM_SA64=1" --budget 30 > "$OUT/qgemm.log" 2>&1
echo "rc $?"
grep -E "FAIL|SUMMARY|variant|compile|check done|rror" "$OUT/qgemm.log" | head -16
stamp "A: pack 1B AWQ"
timeout 8 python3 tools/quant-packers/pack_awq_torch.py --model $H/llama-3.2-1b --out $H/llama-3.2-1b-awq --format awq > "$OUT/pack1b.log" 2>&1
echo "pack rc $?: $(tail -1 "$OUT/pack1b.log" | cut -c1-200)"
stamp "A: e2e 1B quantTailNorm off/on"
left=$((73 - (SECONDS - t0)))
timeout "$left" bun bench/quant_e2e.ts --model $H/llama-3.2-1b --decode 128 --algos "" --prequantized $H/llama-3.2-1b-awq --no-ref \
  --ab quantTailNorm --ab-reps 1 > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\||copy|rror|OK|MISMATCH" "$OUT/e2e1b.log" | cut -c1-600 | head -8
stamp done
