#!/usr/bin/env bash
# Session 15 (issues 14 / 16), helper tput, round 1 (budget 200 s; models: llama-3.2-1b llama-3.1-8b-fp8).
# The closing call's throughput invocations (tools/gpu/session14_closing.sh: `thr NAME MODEL N LIMIT`), every run with
# BUN_JSC_logGC=1 (JSC's GC log: cycles, pauses, heap after) and the new bench flags --mem (rss / heap by phase, timed-run
# markers on stderr) and --profile-steps (the last timed run by phase), so A and B differ only in the setting named.
#   1. host weights (session 14's release after the upload, never measured on a GPU): keepHostWeights false (default) vs
#      true (--keep-host-weights); 1B 64 x (128,128) --reps 5 twice each, 8B FP8 + FP8 KV 512 x (128,128) --reps 3.
#   2. schedule / graph knobs (greedy ids compared with the default's):
#      graphSplits (LLMRT_GRAPH_SPLITS=1, session 9, off): the bench's engine has maxSeqLen 288 = in + out + 32, so the
#        batch-invariant decode graphs launch a second attention split of 256 keys whose blocks all return at once
#        (4,096 empty blocks a layer at 512 rows, 512 at 64); with the switch a step replays a graph of the splits its
#        longest span needs (the same bits). --max-seq-len 256 (1B, once): the same grid by the engine's size instead;
#      --max-num-tokens 65536 (8B: one prefill step of 512 prompts instead of two of 256).
#   3. tests/gpu/graph_splits.test.ts (bf16 / e4m3 cache, now on batch4) if time is left.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
export BUN_JSC_logGC=1
F=(--mem --profile-steps)
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
thr 1b_a1 $M1 64 15 --reps 5 "${F[@]}"
thr 1b_k1 $M1 64 15 --reps 5 "${F[@]}" --keep-host-weights
(export LLMRT_GRAPH_SPLITS=1; thr 1b_g1 $M1 64 15 --reps 5 "${F[@]}")
thr 1b_a2 $M1 64 15 --reps 5 "${F[@]}"
thr 1b_k2 $M1 64 15 --reps 5 "${F[@]}" --keep-host-weights
(export LLMRT_GRAPH_SPLITS=1; thr 1b_g2 $M1 64 15 --reps 5 "${F[@]}")
thr 1b_s1 $M1 64 15 --reps 5 "${F[@]}" --max-seq-len 256
thr 8b_a1 $P8 512 38 --reps 3 "${F[@]}"
thr 8b_k1 $P8 512 38 --reps 3 "${F[@]}" --keep-host-weights
(export LLMRT_GRAPH_SPLITS=1; thr 8b_g1 $P8 512 38 --reps 3 "${F[@]}")
thr 8b_t1 $P8 512 40 --reps 3 "${F[@]}" --max-num-tokens 65536
left=$((190 - (SECONDS - _t0)))
echo "left $left s"
[ "$left" -gt 30 ] && thr 8b_a2 $P8 512 $((left - 2)) --reps 3 "${F[@]}"
left=$((190 - (SECONDS - _t0)))
if [ "$left" -gt 12 ]; then
  stamp "tests/gpu/graph_splits.test.ts"
  env -u BUN_JSC_logGC timeout $((left - 4)) bun test --timeout 600000 tests/gpu/graph_splits.test.ts > "$OUT/graph_splits.log" 2>&1
  echo "rc $?"; grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail)$" "$OUT/graph_splits.log" | cut -c1-200 | head -6
fi
stamp "summary"
R=(1b_a1 1b_k1 1b_g1 1b_a2 1b_k2 1b_g2 1b_s1 8b_a1 8b_k1 8b_g1 8b_t1 8b_a2)
python3 tools/gpu/s15_tput_gc.py "$OUT" "${R[@]}"
thr_summary "${R[@]}"
same_ids 1b_a1 1b_k1
same_ids 1b_a1 1b_g1
same_ids 1b_a1 1b_s1
same_ids 1b_a1 1b_a2
same_ids 8b_a1 8b_k1
same_ids 8b_a1 8b_g1
same_ids 8b_a1 8b_t1
stamp done
