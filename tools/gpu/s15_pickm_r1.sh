#!/usr/bin/env bash
# Session 15, helper pickm, round 1 (no model; ~65 s, queue with BUDGET 70). eagerBucketGemm (LLMRT_EAGER_BUCKET_GEMM,
# default off): an eager decode step of T ≤ decode-cap sequences runs every per-M tuned GEMM (not batch-invariant: decode
# linears of > 8 rows, their lm_head) with the algorithm of the graph of T's bucket (GemmArgs.pickM: the heuristic over the
# bucket's M, that M's timing-cache entry, cublasLtMatmulAlgoCheck at T), so graphs = eager by construction.
#   1. tests/gpu/eager_bucket_gemm.test.ts alone: (a) per shape, M 12 candidate indices seeded into a private timing cache
#      one by one — which round differently from M 16's pick — and pickM 16's rows vs the 16-row call's (must be bitwise);
#      (b) the pickM timing entry shared, and the cost of M 12 at M 16's pick vs its own (1B shapes, ms per call);
#      (c) a 12-sequence eager decode step with the M 12 picks FORCED to differing candidates: E+pick = the graph bitwise
#      (asserted), E (flag off) differs (asserted: the test bites)
#   2. beside each other, flag ON: batch_attention4.test.ts's four 12-sequence cases and batch4_eager_diag.test.ts
# Reading: "pickM: NxK: M12 picks differing from M16's [i,...], pickM =" per shape; "pickM cost at M 12 ...";
# "eagerBucketGemm: ... | decode 12 vs the graph: E+pick bitwise, E @i | pick fallbacks 0"; then pass / fail counts.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
left() { echo $((64 - (SECONDS - _t0))); }
stamp "1. eager_bucket_gemm.test.ts"
timeout 30 bun test --timeout 600000 tests/gpu/eager_bucket_gemm.test.ts > "$OUT/pickm.log" 2>&1
echo "rc $?"
grep -E "^pickM|^eagerBucketGemm|^\((pass|fail|skip)\)|AssertionError|error:|^ *[0-9]+ (pass|fail)" "$OUT/pickm.log" | cut -c1-1500 | head -20
stamp "2. flag on: batch_attention4 (12-sequence cases) + batch4 diag, beside each other (limit $(left) s)"
LLMRT_EAGER_BUCKET_GEMM=1 timeout "$(left)" bun test --timeout 600000 tests/gpu/batch4_eager_diag.test.ts > "$OUT/diag_on.log" 2>&1 &
p=$!
LLMRT_EAGER_BUCKET_GEMM=1 timeout "$(left)" bun test --timeout 600000 tests/gpu/batch_attention4.test.ts -t "cache\): near" > "$OUT/b4_on.log" 2>&1
echo "batch_attention4 rc $?"
wait $p
echo "diag rc $?"
grep -hE "^batch4 |^\((pass|fail)\)|AssertionError|^ *[0-9]+ (pass|fail)" "$OUT/b4_on.log" "$OUT/diag_on.log" | cut -c1-700 | head -24
stamp done
