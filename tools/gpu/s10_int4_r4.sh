#!/usr/bin/env bash
# Session 10 (issue 12), helper int4, round 4 (if the 13:50 batch runs it): where the int4 GEMV bound is.
#   test — tests/gpu/quant_gemv1.test.ts with the tail test's uint4 consumer at 2048 in-features (r3's test bug fixed)
#   tune — one 8B int4 layer: quant_gemv1 as is, without its scale / zero-point loads (NOSCALE=1: the ceiling, wrong
#          sums), with groups of 4 (GMAX=4), beside the 16-row kernels; rows print as measured
#   e2e  — if time is left: llama-3.2-1b AWQ batch 1, --ab quantGemv1 (on first)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
H=/tmp/hfmodels
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "GPU test quant_gemv1"
timeout 12 bun test --timeout 600000 tests/gpu/quant_gemv1.test.ts > "$OUT/gputest.log" 2>&1; echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail)|rror" "$OUT/gputest.log" | cut -c1-300 | head -12
stamp "tune 8b int4: default / NOSCALE=1 / GMAX=4"
timeout 16 bun bench/quant_gemv1_tune.ts --variants ";NOSCALE=1;GMAX=4" --only 8b --bits 4 --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1; echo "rc $?"
grep -E "checks:|rror|layer|  llama" "$OUT/tune.log" | head -40 | cut -c1-400
stamp "pack 1b awq"
[ -f $H/llama-3.2-1b-awq/config.json ] || timeout 9 python3 tools/quant-packers/pack_awq_torch.py --model $M1 --out $H/llama-3.2-1b-awq --format awq > "$OUT/pack1b.log" 2>&1
echo "pack rc $?"
left=$((44 - (SECONDS - _t0)))
stamp "e2e 1b ($left s)"
[ "$left" -gt 8 ] && timeout "$left" bun bench/quant_e2e.ts --model $M1 --decode 64 --algos "" --prequantized $H/llama-3.2-1b-awq --no-ref \
  --ab quantGemv1 --ab-reps 1 --ab-on-first > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\||copy|rror|OK|MISMATCH|tok/s" "$OUT/e2e1b.log" | cut -c1-700 | head -10
stamp done
