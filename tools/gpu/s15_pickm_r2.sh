#!/usr/bin/env bash
# Session 15, helper pickm, round 2 (no model; ~62 s, queue with BUDGET 70): eagerBucketGemm is now ON by default
# (commit "eagerBucketGemm on by default"; r1: tools/gpu/s15_pickm_r1.sh). The GPU tests that compare eager and graph
# decode steps, on the defaults, in 3 processes at once on the one GPU (the load under which session 14's picks diverged):
#   P1 batch_attention4.test.ts (all 6: the 12-sequence cases and the 130-sequence batch4w / batch2w ones)
#   P2 eager_bucket_gemm.test.ts (pickM = the 16-row call's bits on 10 shapes; forced M 12 picks: E+pick = graph, E off
#      differs) + batch_attention4_serial.test.ts (256+-sequence eager vs graph steps: pickM of a big bucket)
#   P3 batch4_eager_diag.test.ts + decode_sk.test.ts
# Reading: "Pn rc R", the tests' own lines (pickM / eagerBucketGemm / batch4 ...), pass / fail counts per process.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
L=60
t() { # NAME FILES...: one bun test process, limit L
  local name=$1
  shift
  timeout "$L" bun test --timeout 600000 "$@" > "$OUT/$name.log" 2>&1
  echo "rc $?" >> "$OUT/$name.log"
}
stamp "3 processes, defaults (eagerBucketGemm on), limit $L s"
t p1 tests/gpu/batch_attention4.test.ts &
a=$!
t p2 tests/gpu/eager_bucket_gemm.test.ts tests/gpu/batch_attention4_serial.test.ts &
b=$!
t p3 tests/gpu/batch4_eager_diag.test.ts tests/gpu/decode_sk.test.ts &
c=$!
wait $a $b $c
for p in p1 p2 p3; do
  echo "-- $p: $(tail -1 "$OUT/$p.log")"
  grep -E "^pickM|^eagerBucketGemm|^batch4 diag|^130-sequence|^\((pass|fail)\)|AssertionError|^ *[0-9]+ (pass|fail)$" "$OUT/$p.log" | cut -c1-900 | head -16
done
stamp done
