#!/usr/bin/env bash
# Session 16 (lead), the last call: the GPU suite in 3 processes again on main after the gemm.ts fix (the closing call's
# suite died in every process on the M-stability check reading a 16-bit probe as fp32 for the fp32 kjv-llama engines:
# CUDA_ERROR_ILLEGAL_ADDRESS, then cascades), and the prefill batch-invariance hole test with LLMRT_INVARIANCE_HOLES=1.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "prefill batch invariance (the session-16 hole)"
LLMRT_INVARIANCE_HOLES=1 timeout 60 bun test --timeout 600000 tests/gpu/prefill_batch_invariance.test.ts > "$OUT/invariance.log" 2>&1
echo "rc $?"; grep -E "^\(pass|^\(fail|differ|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/invariance.log" | cut -c1-250 | head -16
gpu_suite_par gputests 130 3
stamp done
