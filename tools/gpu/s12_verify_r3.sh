#!/usr/bin/env bash
# Session 12, helper verify, round 3: is decode_attention_batch4w deterministic? r1 saw the 130-sequence case's eager logits
# differ from its graphs' at decode 0 (4 processes on the GPU, one of them the 1B divergence bench); r2 (same check, 5 processes)
# found every step bitwise. Here tests/gpu/batch_attention4.test.ts's new test repeats one 130-sequence decode step 12 times
# on batch4w and batch2w, graphs and eager, in three processes at once, beside the wide case (strict graphs = eager again)
# and the 1B divergence bench as load (a second sample of r1's accuracy numbers).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp start
run() { # NAME ARGS... : one bun test process in the background
  local name=$1
  shift
  (timeout 42 bun test --timeout 600000 "$@" > "$OUT/$name.log" 2>&1; echo "rc $?" >> "$OUT/$name.log") &
}
run det_a tests/gpu/batch_attention4.test.ts -t "repeated"
run det_b tests/gpu/batch_attention4.test.ts -t "repeated"
run det_c tests/gpu/batch_attention4.test.ts -t "repeated"
run wide tests/gpu/batch_attention4.test.ts -t "130 sequences"
(LLMRT_BENCH_JSON="$OUT/divergence_1b.json" timeout 43 bun bench/batch_divergence.ts --model "$M1" --requests 64 --input 128 --steps 32 --kernels batch2,batch4 > "$OUT/divergence_1b.log" 2>&1; echo "rc $?" >> "$OUT/divergence_1b.log") &
wait
stamp "all done"
for f in det_a det_b det_c wide; do
  echo "-- $f: $(tail -1 "$OUT/$f.log")"
  grep -E "^\(fail|^ *[0-9]+ (pass|fail)$|^130-sequence|^batch4 |AssertionError" "$OUT/$f.log" | cut -c1-400 | head -8
done
echo "-- divergence: $(tail -1 "$OUT/divergence_1b.log")"
grep -E "^\| decode|nearer" "$OUT/divergence_1b.log" | head -4
stamp done
