#!/usr/bin/env bash
# Session 5 — speculative decoding (issue 15) device job, queued with tools/gpu/queue_job.sh spec ... llama-3.2-1b.
# Stages (args): test | diag | kjv | kjv7 | 1b3 | 1b. Logs in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/spec-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
M=/tmp/hfmodels/llama-3.2-1b
stages=${*:-test diag 1b kjv7}
t0=$SECONDS
for s in $stages; do
  echo "== [$((SECONDS - t0)) s] $s"
  case $s in
    test)
      timeout 30 bun test tests/gpu/speculative.test.ts > "$OUT/test.log" 2>&1; echo "rc $?"
      grep -E "verify vs decode|verify plan|identical;|pass|fail|rror" "$OUT/test.log" | head -30 | cut -c1-300 ;;
    diag)
      timeout 45 bun tools/gpu/spec_diag.ts $M 600 > "$OUT/diag.log" 2>&1; echo "rc $?"
      tail -12 "$OUT/diag.log" | cut -c1-400 ;;
    kjv)
      timeout 20 bun bench/speculative.ts --backend cuda --batch 1 --new 128 --reps 3 > "$OUT/spec_kjv.log" 2>&1; echo "rc $?"
      tail -8 "$OUT/spec_kjv.log" | cut -c1-300 ;;
    kjv7)
      timeout 20 bun bench/speculative.ts --backend cuda --batch 1 --new 128 --reps 3 --draft-len 7 --modes plain,NGram > "$OUT/spec_kjv_k7.log" 2>&1; echo "rc $?"
      tail -6 "$OUT/spec_kjv_k7.log" | cut -c1-300 ;;
    1b3)
      timeout 35 bun bench/speculative.ts --model $M --backend cuda --batch 1 --new 128 --modes plain,NGram --reps 3 --workload loop --loop-len 2048 --draft-len 3 > "$OUT/spec_1b_k3.log" 2>&1; echo "rc $?"
      tail -8 "$OUT/spec_1b_k3.log" | cut -c1-300 ;;
    1b)
      timeout 35 bun bench/speculative.ts --model $M --backend cuda --batch 1 --new 128 --modes plain,NGram --reps 3 --workload loop --loop-len 2048 > "$OUT/spec_1b.log" 2>&1; echo "rc $?"
      tail -8 "$OUT/spec_1b.log" | cut -c1-300 ;;
  esac
done
echo "== [$((SECONDS - t0)) s] done"
