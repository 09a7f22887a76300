#!/usr/bin/env bash
# Session 10 (issue 12), helper int4, round 1: quant_gemv1 (kernels/quant_gemv1.cu, persistent grid, each warp streams
# contiguous row pairs through a register ring) — correctness vs quant_gemv_fused m = 1 and one 8B / 1B layer's timing
# beside the 16-row kernels (fused, tail) and the copy ceiling, in one process (bench/quant_gemv1_tune.ts).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "quant_gemv1 checks + timing (D=4; D=6,GMAX=2)"
timeout 42 bun bench/quant_gemv1_tune.ts --variants "D=4;D=6,GMAX=2" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1; echo "rc $?"
grep -E "FAIL|checks:|rror|ceiling|layer" "$OUT/tune.log" | head -60 | cut -c1-400
stamp done
