#!/usr/bin/env bash
# Session 19, helper battn, round 1 again as battn-r2 (budget 170 s; llama-3.1-8b-fp8): decode_attention_batch4 at the bench graphs' geometry
# (Kept as run. OWNL, QSPLIT and PF as an XF bit were removed after battn-r2: their configurations no longer build.)
# (battn-r1 ran at 14:31 and every step failed to build: NVRTC refuses a generic lambda (host function in JIT mode), which nvcc took.)
# (split 256 of maxSeqLen 288, positions 192). X = batchAttention4X's knobs (EARLY+RCP+SPLITM+OUTV, DB4_XSEL 15). New knob:
#   OWNL — the own key / value made late by the warp whose tile holds it (one lane a run of 8 elements, straight into the ring
#          stage and the cache; its raw bf16 rows ride tile 0's cp.async group): nothing own-key between the first issue and
#          the first tile (s17 trace: own k/v 2.32 us of x's 7.10-us prologue). The same bytes, so the same bits.
#   PF   — session 14's block-table prefetch with the position (XF bit 64 now, so x can take it).
#   QSPLIT — q's rotation in runs of 4 (hd128) / 2 (hd64) elements, live rows first: G 4's live rows over both warps.
#   HALFEND — G <= 4: the end's merge / output of a head's run over two lanes (lane c4 + 2 idle otherwise).
#   SWZ  — e4m3 hd128 K / V rows unpadded, 16-byte chunks XOR-swizzled by row (2 KB less shared memory a block).
#   2,2,1,10 — 10 blocks an SM (96 registers); 2,2,1,11 with SWZ — 11 blocks an SM (80 registers, 76 B spills per ptxas):
#   4 waves of 1,056 blocks become 3 of 1,452 at 512 sequences.
# x's source default DB4_XSEL is now 751 = X + OWNL + PF + QSPLIT + HALFEND (session 17's x: 15).
# 1. harness timing + traces, 8B 512 seqs e4m3 q8 entry; 1B 64 seqs bf16 (outputs bitwise the default's on the timing line)
# 2. GPU test tests/gpu/batch_attention4x.test.ts: x (751) vs the default session, logits bit for bit
# 3. end to end, llama-3.1-8b FP8 + FP8 KV 512 x (128,128) --reps 2: a default / c batchAttention4X (751) / b x at XSEL 15
#    (session 17's, via bench/throughput.ts LLMRT_BENCH_DEFINES), interleaved; greedy ids compared
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
H=tools/cuda-kernel-check/decode_attention_batch4.py
P8=/tmp/hfmodels/llama-3.1-8b-fp8
X=EARLY+RCP+SPLITM+OUTV
stamp "8B e4m3 q8 entry, 512 seqs: d / X / X+OWNL+PF+QSPLIT (these 3 traced) / +HALFEND / X+OWNL / X+OWNL+PF / +SWZ / 11 blocks"
timeout 34 python3 $H --only timing --fp8 1 --q8 --no-batch2 --split 256 --trace 3 --info --cases 8b:512:192-193 \
  --fcfgs "d;$X;$X+OWNL+PF+QSPLIT;$X+OWNL+PF+QSPLIT+HALFEND;$X+OWNL;$X+OWNL+PF;$X+OWNL+PF+QSPLIT+SWZ;2,2,1,11+$X+OWNL+PF+QSPLIT+SWZ" \
  > "$OUT/b8q.log" 2>&1
echo "rc $?"
grep -a -E "copy|seqs ctx|trace|regs|FAIL|Error|error|Traceback" "$OUT/b8q.log" | cut -c1-1000 | head -16
stamp "1B 64 seqs bf16 hd64: d / X / X+OWNL+PF+QSPLIT (traced) / +HALFEND"
timeout 18 python3 $H --only timing --fp8 0 --no-batch2 --split 256 --trace 3 --cases 1b:64:192-193 \
  --cfgs "d;$X;$X+OWNL+PF+QSPLIT;$X+OWNL+PF+QSPLIT+HALFEND" > "$OUT/b1.log" 2>&1
echo "rc $?"
grep -a -E "seqs ctx|trace|FAIL|Error|error|Traceback" "$OUT/b1.log" | cut -c1-1000 | head -6
stamp "GPU test batch_attention4x (x = XSEL 751 vs the default session, bitwise)"
timeout 34 bun test --timeout 600000 tests/gpu/batch_attention4x.test.ts > "$OUT/t4x.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|differ|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/t4x.log" | cut -c1-220 | head -10
XD="decode_attention_batch4.cu:-DDB4_XSEL=15"
for r in 1 2; do
  left=$((167 - (SECONDS - _t0)))
  [ "$left" -gt 20 ] && thr "a$r" "$P8" 512 $((left < 28 ? left : 28)) --reps 2
  left=$((167 - (SECONDS - _t0)))
  [ "$left" -gt 20 ] && LLMRT_BATCH_ATTENTION4_X=1 thr "c$r" "$P8" 512 $((left < 28 ? left : 28)) --reps 2
  left=$((167 - (SECONDS - _t0)))
  [ "$left" -gt 20 ] && LLMRT_BATCH_ATTENTION4_X=1 LLMRT_BENCH_DEFINES="$XD" thr "b$r" "$P8" 512 $((left < 28 ? left : 28)) --reps 2
done
thr_summary a1 c1 b1 a2 c2 b2
same_ids a1 b1
same_ids a1 c1
stamp done
