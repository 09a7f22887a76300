#!/usr/bin/env bash
# Session 5 — speculative decoding (issue 15) device job, queued with tools/gpu/queue_job.sh spec ... llama-3.2-1b.
# Stages (args, default all): test | kjv | 1b. Logs in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/spec-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
stages=${*:-test kjv kjv2 1b}
t0=$SECONDS
for s in $stages; do
  echo "== [$((SECONDS - t0)) s] $s"
  case $s in
    test)
      timeout 45 bun test tests/gpu/speculative.test.ts > "$OUT/test.log" 2>&1; echo "rc $?"
      grep -E "verify vs decode|verify plan|identical;|pass|fail|error|Error" "$OUT/test.log" | head -30 | cut -c1-300 ;;
    kjv)
      timeout 30 bun bench/speculative.ts --backend cuda --batch 1 --new 128 --reps 3 > "$OUT/spec_kjv.log" 2>&1; echo "rc $?"
      tail -9 "$OUT/spec_kjv.log" | cut -c1-300 ;;
    kjv2)
      timeout 30 bun bench/speculative.ts --backend cuda --batch 1 --new 128 --reps 3 --draft-len 2 > "$OUT/spec_kjv_k2.log" 2>&1; echo "rc $?"
      tail -7 "$OUT/spec_kjv_k2.log" | cut -c1-300 ;;
    1b)
      timeout 60 bun bench/speculative.ts --model /tmp/hfmodels/llama-3.2-1b --backend cuda --batch 1 --new 128 --modes plain,NGram --reps 3 --workload loop --loop-len 768 > "$OUT/spec_1b.log" 2>&1; echo "rc $?"
      tail -9 "$OUT/spec_1b.log" | cut -c1-300 ;;
  esac
done
echo "== [$((SECONDS - t0)) s] done"
