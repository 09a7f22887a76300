#!/usr/bin/env bash
# Session 17, helper battn, round 1 (budget 120 s, no checkpoint): decode_attention_batch4 at the bench graphs' geometry
# (The 1B harness run died at 2,6,1,8: 48 KB of static shared memory, over the limit; its timing line was lost, the traces kept.)
# (split 256 of maxSeqLen 288, positions 192), the engine's forms: llama-3.2-1b 64 seqs bf16 hd64 (bf16 out) and llama-3.1-8b
# 512 / 64 seqs e4m3 hd128 through the q8 entry (fp8DecodeAttnQuant), plus the e4m3 bf16-out entry. New harness knobs (same
# bits expected; the timing line says whether every output is bitwise the first configuration's):
#   EARLY — the e4m3 scales and the own key's block-table entry loaded with the position (off the prologue's chain)
#   OUTV  — warp 0's bf16 output staged in its ring, written as 16-byte stores (the e4m3 form scatters 2-byte stores)
#   RCP   — o / l as o · rcp.rn(l) + one remainder FMA (Markstein), true division below 2^-60
#   SPLITM — the end's merge and output split over the block's 2 warps by head parity (warp 0 heads 2c4, warp 1 2c4 + 1)
# 1B also at 4 and 6 cp.async stages (2,4,1,8 / 2,6,1,8: the same tiles, the same bits). Per-block DB4_TRACE stamps of the first two configurations of each case.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
H=tools/cuda-kernel-check/decode_attention_batch4.py
stamp "1B 64 seqs bf16 hd64"
timeout 45 python3 $H --only timing --fp8 0 --no-batch2 --split 256 --trace 2 --cases 1b:64:192-193 \
  --cfgs "d;EARLY+OUTV+RCP+SPLITM;EARLY;OUTV;RCP;SPLITM;2,4,1,8;2,6,1,8" > "$OUT/b1.log" 2>&1
echo "rc $?"
grep -E "copy|seqs ctx|trace|FAIL|Error|error|Traceback" "$OUT/b1.log" | cut -c1-1200 | head -12
stamp "8B e4m3 q8 entry, 512 and 64 seqs"
timeout 42 python3 $H --only timing --fp8 1 --q8 --no-batch2 --split 256 --trace 2 --cases 8b:512:192-193,8b:64:192-193 \
  --fcfgs "d;EARLY+RCP+SPLITM;EARLY;SPLITM;RCP" > "$OUT/b8q.log" 2>&1
echo "rc $?"
grep -E "copy|seqs ctx|trace|FAIL|Error|error|Traceback" "$OUT/b8q.log" | cut -c1-1200 | head -12
left=$((115 - (SECONDS - _t0)))
stamp "8B e4m3 bf16-out entry, 512 seqs ($left s left)"
[ "$left" -gt 12 ] && timeout "$left" python3 $H --only timing --fp8 1 --no-batch2 --split 256 --cases 8b:512:192-193 \
  --fcfgs "d;OUTV;SPLITM+OUTV" > "$OUT/b8.log" 2>&1
echo "rc $?"
grep -E "seqs ctx|FAIL|Error|error|Traceback" "$OUT/b8.log" | cut -c1-600 | head -6
left=$((117 - (SECONDS - _t0)))
stamp "GPU test batch_attention4x ($left s left; x = batch4's bits)"
[ "$left" -gt 15 ] && timeout "$left" bun test --timeout 600000 tests/gpu/batch_attention4x.test.ts > "$OUT/t4x.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|differ|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/t4x.log" | cut -c1-220 | head -10
stamp done
