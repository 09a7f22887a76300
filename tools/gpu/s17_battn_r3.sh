#!/usr/bin/env bash
# Session 17, helper battn, round 3 / final (budget 120 s; llama-3.2-1b):
#   1. harness, llama-3.1-8b e4m3 through the q8 entry at 512 and 64 seqs (split 256, positions 192): default / x
#      (batchAttention4X's kernel: EARLY+RCP+SPLITM+OUTV) / x + OWNP (new: the own key / value encoded one element a thread
#      instead of 16 elements on HD / 16 threads; the same bytes) — outputs bitwise the default's
#   2. harness checks, e4m3 caches (vs float64, cache bytes vs batch2, batch invariance, same bits as the default):
#      default / x + OWNP, hd 128 G4 and hd 64 G7, windows, several splits
#   3. GPU test tests/gpu/batch_attention4.test.ts with LLMRT_BATCH_ATTENTION4_X=1 (every session's batch4 steps on x)
#   4. end to end, llama-3.2-1b 64 x (128,128) --reps 5: A default / B batchAttention4X, interleaved twice; ids compared
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
H=tools/cuda-kernel-check/decode_attention_batch4.py
stamp "8B e4m3 q8 entry, 512 / 64 seqs: default / x / x + OWNP"
timeout 28 python3 $H --only timing --fp8 1 --q8 --no-batch2 --split 256 --cases 8b:512:192-193,8b:64:192-193 \
  --fcfgs "d;EARLY+RCP+SPLITM+OUTV;EARLY+RCP+SPLITM+OUTV+OWNP" > "$OUT/b8q.log" 2>&1
echo "rc $?"
grep -a -E "copy|seqs ctx|FAIL|Error|error" "$OUT/b8q.log" | cut -c1-700 | head -6
stamp "harness checks, e4m3: default / x + OWNP"
timeout 25 python3 $H --only check --fp8 1 --quick --shapes "32,8,128;14,2,64" --check-cfgs "d;EARLY+RCP+SPLITM+OUTV+OWNP" \
  > "$OUT/chk.log" 2>&1
echo "rc $?"
grep -a -E "SUMMARY|FAIL|Error|error" "$OUT/chk.log" | cut -c1-300 | head -6
stamp "GPU test batch_attention4 with batchAttention4X"
LLMRT_BATCH_ATTENTION4_X=1 timeout 40 bun test --timeout 600000 tests/gpu/batch_attention4.test.ts > "$OUT/t4.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|differ|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/t4.log" | cut -c1-200 | head -10
for r in 1 2; do
  left=$((117 - (SECONDS - _t0)))
  [ "$left" -gt 12 ] && thr "a$r" "$M1" 64 $((left / 2)) --reps 5 --profile-steps
  left=$((117 - (SECONDS - _t0)))
  [ "$left" -gt 6 ] && LLMRT_BATCH_ATTENTION4_X=1 thr "b$r" "$M1" 64 "$left" --reps 5 --profile-steps
done
thr_summary a1 b1 a2 b2
for n in a1 b1 a2 b2; do echo "$n $(grep -h "decode ≤64" "$OUT/t_$n.log" 2> /dev/null | head -1)"; done
same_ids a1 b1
stamp done
