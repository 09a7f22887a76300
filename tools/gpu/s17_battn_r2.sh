#!/usr/bin/env bash
# Session 17, helper battn, round 2 (budget 120 s; llama-3.2-1b):
# (PERSIST / STAGGER, PDLW and batchAttention4Pdl lost and were removed after this round: the script needs commit e8dfa3f.)
#   1. harness, llama-3.1-8b 512 seqs e4m3 through the q8 entry (the bench graph's geometry: split 256, positions 192):
#      default / x (EARLY+RCP+SPLITM) / EARLY+SPLITM / PERSIST (a persistent 1-D grid of 132 x 8 blocks taking the usual
#      grid's items in turn) / PERSIST + STAGGER 6 / 10 us (odd rounds of blocks start later, so an SM's blocks are in
#      different phases) / PERSIST + x + STAGGER 8 us — all bitwise the default's (the timing line says so)
#   2. end to end, llama-3.2-1b 64 x (128,128) --reps 5, one job: A default / B batchAttention4X / C batchAttention4Pdl
#      (x's PDLW form launched with PDL after the qkv linear), interleaved twice; greedy ids compared
#   3. GPU test tests/gpu/batch_attention4x.test.ts (x and xp vs the default, bitwise; graphs and eager)
#   4. harness, llama-3.2-1b 64 seqs bf16 hd64: default / x / x without RCP / x + PDLW (the reorder without a PDL launch)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
H=tools/cuda-kernel-check/decode_attention_batch4.py
stamp "8B e4m3 q8 entry, 512 seqs: x, persistent, staggered"
timeout 36 python3 $H --only timing --fp8 1 --q8 --no-batch2 --split 256 --cases 8b:512:192-193 \
  --fcfgs "d;EARLY+RCP+SPLITM;EARLY+SPLITM;PERSIST;PERSIST+STAGGER=6000;PERSIST+STAGGER=10000;PERSIST+EARLY+RCP+SPLITM+STAGGER=8000" \
  > "$OUT/b8q.log" 2>&1
echo "rc $?"
grep -a -E "copy|seqs ctx|FAIL|Error|error" "$OUT/b8q.log" | cut -c1-900 | head -8
for r in 1 2; do
  thr "a$r" "$M1" 64 15 --reps 5 --profile-steps
  LLMRT_BATCH_ATTENTION4_X=1 thr "b$r" "$M1" 64 15 --reps 5 --profile-steps
  LLMRT_BATCH_ATTENTION4_PDL=1 thr "c$r" "$M1" 64 15 --reps 5 --profile-steps
done
thr_summary a1 b1 c1 a2 b2 c2
for n in a1 b1 c1 a2 b2 c2; do echo "$n $(grep -h "decode ≤64" "$OUT/t_$n.log" | head -1)"; done
same_ids a1 b1
same_ids a1 c1
same_ids a1 a2
left=$((117 - (SECONDS - _t0)))
stamp "GPU test batch_attention4x ($left s left)"
[ "$left" -gt 15 ] && timeout $((left < 45 ? left : 45)) bun test --timeout 600000 tests/gpu/batch_attention4x.test.ts > "$OUT/t4x.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|differ|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/t4x.log" | cut -c1-200 | head -10
left=$((117 - (SECONDS - _t0)))
stamp "1B 64 seqs bf16 hd64 ($left s left)"
[ "$left" -gt 12 ] && timeout "$left" python3 $H --only timing --fp8 0 --no-batch2 --split 256 --cases 1b:64:192-193 \
  --cfgs "d;EARLY+OUTV+RCP+SPLITM;EARLY+OUTV+SPLITM;EARLY+OUTV+RCP+SPLITM+PDLW" > "$OUT/b1.log" 2>&1
echo "rc $?"
grep -a -E "seqs ctx|FAIL|Error|error" "$OUT/b1.log" | cut -c1-600 | head -4
stamp done
