#!/usr/bin/env bash
# Session 19, helper battn, final round (budget 120 s; llama-3.1-8b-fp8, llama-3.2-1b). battn-r2 (harness, same process, all
# bitwise): 8B 512 seqs e4m3 q8 default 86.9 / X 85.0 / X+OWNL+PF+QSPLIT 85.2 / +HALFEND 83.5 / +SWZ 80.7 / 11 blocks 96.7 us;
# OWNL moved 1.5 us from the prologue into the last tile (no gain), PF / QSPLIT nothing; 1B: X 13.2, X+OWNL+PF+QSPLIT 14.7.
# x's source default DB4_XSEL is now 783 = X + SWZ (e4m3 hd128) + HALFEND.
# 1. harness, 8B 512 seqs e4m3 q8: d / 783 (both traced) / X / 10 blocks at 783; 1B 64 seqs bf16: d / X / 783 (= X + HALFEND)
# 2. GPU test tests/gpu/batch_attention4x.test.ts: x (783) vs the default session, logits bit for bit
# 3. end to end, llama-3.1-8b FP8 + FP8 KV 512 x (128,128): a default / c batchAttention4X (783), interleaved; ids compared;
#    then llama-3.2-1b 64 x (128,128) --reps 5 a / c while the budget lasts
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
H=tools/cuda-kernel-check/decode_attention_batch4.py
P8=/tmp/hfmodels/llama-3.1-8b-fp8
X=EARLY+RCP+SPLITM+OUTV
stamp "8B e4m3 q8 entry, 512 seqs: d / X+SWZ+HALFEND (traced) / X / 10 blocks X+SWZ+HALFEND"
timeout 18 python3 $H --only timing --fp8 1 --q8 --no-batch2 --split 256 --trace 2 --cases 8b:512:192-193 \
  --fcfgs "d;$X+SWZ+HALFEND;$X;2,2,1,10+$X+SWZ+HALFEND" > "$OUT/b8q.log" 2>&1
echo "rc $?"
grep -a -E "seqs ctx|trace|FAIL|Error|error|Traceback" "$OUT/b8q.log" | cut -c1-1000 | head -6
stamp "GPU test batch_attention4x (x = XSEL 783 vs the default session, bitwise)"
timeout 30 bun test --timeout 600000 tests/gpu/batch_attention4x.test.ts > "$OUT/t4x.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|differ|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/t4x.log" | cut -c1-220 | head -10
for r in 1 2; do
  left=$((117 - (SECONDS - _t0)))
  [ "$left" -gt 19 ] && thr "a$r" "$P8" 512 $((left < 26 ? left : 26))
  left=$((117 - (SECONDS - _t0)))
  [ "$left" -gt 19 ] && LLMRT_BATCH_ATTENTION4_X=1 thr "c$r" "$P8" 512 $((left < 26 ? left : 26))
done
thr_summary a1 c1 a2 c2
same_ids a1 c1
same_ids a1 a2
left=$((117 - (SECONDS - _t0)))
[ "$left" -gt 12 ] && thr "a1b" "$M1" 64 $((left / 2)) --reps 5
left=$((117 - (SECONDS - _t0)))
[ "$left" -gt 6 ] && LLMRT_BATCH_ATTENTION4_X=1 thr "c1b" "$M1" 64 "$left" --reps 5
thr_summary a1b c1b
same_ids a1b c1b
left=$((118 - (SECONDS - _t0)))
stamp "1B 64 seqs bf16 hd64: d / X / X+HALFEND ($left s left)"
[ "$left" -gt 8 ] && timeout "$left" python3 $H --only timing --fp8 0 --no-batch2 --split 256 --cases 1b:64:192-193 \
  --cfgs "d;$X;$X+HALFEND" > "$OUT/b1.log" 2>&1
grep -a -E "seqs ctx|FAIL|Error|error|Traceback" "$OUT/b1.log" 2> /dev/null | cut -c1-600 | head -4
stamp done
