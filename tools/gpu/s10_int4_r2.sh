#!/usr/bin/env bash
# Session 10 (issue 12), helper int4, round 2: quant_gemv1 with the ring in groups of G segments (D = 8: two groups of 4
# in flight), one set of scale / zero-point loads per group (lane (g, t) fetches segment t's, shuffled to the quad).
#   test — tests/gpu/quant_gemv1.test.ts (vs float64, the bits of quant_gemv_fused, the addnorm / rs pair)
#   tune — bench/quant_gemv1_tune.ts: checks (same bits as quant_gemv_fused) + one 8B / 1B layer vs the 16-row kernels;
#          variants D=8 (G=4), D=8,GMAX=2, D=6,GMAX=2, NOSCALE=1 (no scale / zero-point loads: the ceiling, wrong sums)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "GPU test quant_gemv1"
timeout 12 bun test --timeout 600000 tests/gpu/quant_gemv1.test.ts > "$OUT/gputest.log" 2>&1; echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail)|rror" "$OUT/gputest.log" | cut -c1-300 | head -12
left=$((43 - (SECONDS - _t0)))
stamp "quant_gemv1 checks + timing ($left s)"
timeout "$left" bun bench/quant_gemv1_tune.ts --variants "D=8;D=8,GMAX=2;D=6,GMAX=2;D=8,NOSCALE=1" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1; echo "rc $?"
grep -E "FAIL|checks:|rror|ceiling|layer" "$OUT/tune.log" | head -70 | cut -c1-400
stamp done
