#!/usr/bin/env bash
# Session 10 (issue 12), helper int4, round 3 (the last): quant_gemv1 as it would be turned on (D = 8, groups of 2).
#   test — tests/gpu/quant_gemv1.test.ts: vs float64, the bits of quant_gemv_fused (any grid), the addnorm / rs pair
#   e2e  — llama-3.2-1b AWQ g128 batch-1 decode, bench/quant_e2e.ts --ab quantGemv1 (on first), beside bf16
#   tune — bench/quant_gemv1_tune.ts --only 8b: same-bits checks + one llama-3.1-8b layer, 16-row kernels vs quant_gemv1
#          (the same entry-point selection as the test: the compile is shared through the cache); rows print as measured
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
H=/tmp/hfmodels
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "GPU test quant_gemv1"
timeout 13 bun test --timeout 600000 tests/gpu/quant_gemv1.test.ts > "$OUT/gputest.log" 2>&1; echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail)|rror" "$OUT/gputest.log" | cut -c1-300 | head -12
stamp "pack 1b awq"
[ -f $H/llama-3.2-1b-awq/config.json ] || timeout 6 python3 tools/quant-packers/pack_awq_torch.py --model $M1 --out $H/llama-3.2-1b-awq --format awq > "$OUT/pack1b.log" 2>&1
echo "pack rc $?"
stamp "e2e 1b"
timeout 16 bun bench/quant_e2e.ts --model $M1 --decode 64 --algos "" --prequantized $H/llama-3.2-1b-awq --no-ref \
  --ab quantGemv1 --ab-reps 1 --ab-on-first > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\||copy|rror|OK|MISMATCH|tok/s" "$OUT/e2e1b.log" | cut -c1-700 | head -10
left=$((44 - (SECONDS - _t0)))
stamp "tune 8b ($left s)"
timeout "$left" bun bench/quant_gemv1_tune.ts --variants "" --only 8b --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1; echo "rc $?"
grep -E "FAIL|checks:|rror|ceiling|layer|  llama" "$OUT/tune.log" | head -50 | cut -c1-400
stamp done
