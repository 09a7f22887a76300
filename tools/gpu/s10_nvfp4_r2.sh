#!/usr/bin/env bash
# Session 10, helper nvfp4, round 2 (budget 35 s; model llama-3.2-1b). Since r1: act kernels with 4 lanes a block of 16
# (many CTAs a row), producer fusion (nvfp4_rmsnorm_act / nvfp4_silu_mul_act), GEMV row-tile loop (persistent grid).
#   e2e  — bench/quant_e2e.ts --synthetic-nvfp4 --set nvfp4Mma=1 on llama-3.2-1b: bf16 vs NVFP4 on nvfp4_mma.cu (decode
#          GEMV vs the engine's own GEMM path: the correctness column)
#   test — tests/gpu/nvfp4_mma.test.ts: correctness (act bits, dequant, GEMV vs CPU, persistent grid bits, producers
#          bit for bit) then per-GEMV timing vs lowbit_gemv_nvfp4 and the device copy: variants 4, 2, 4p2, 2p3, 4p2n0 (pB: persistent B blocks per SM; n0: weights through L1)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e: llama-3.2-1b synthetic NVFP4 with nvfp4Mma vs bf16"
timeout 21 bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-nvfp4 --decode 64 --no-ref --set nvfp4Mma=1 > "$OUT/e2e_1b.log" 2>&1
echo "rc $?"
grep -E "^\||copy bandwidth|Error|error" "$OUT/e2e_1b.log" | cut -c1-600 | head -10
left=$((34 - (SECONDS - _t0)))
stamp "test: tests/gpu/nvfp4_mma.test.ts ($left s)"
LLMRT_NVFP4_VARIANTS=4,2,4p2,2p3,4p2n0 timeout "$left" bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts > "$OUT/nvfp4_mma.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail|skip)$|rel error|copy|us \(|ms \(|error|Error|differ" "$OUT/nvfp4_mma.log" | cut -c1-700 | head -40
stamp done
