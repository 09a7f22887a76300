#!/usr/bin/env bash
# Session 19's closing figures on merged main (defaults as committed): session 14's closing job in its lite form
# (CLOSING_LITE=1; checkpoints: hfrefs llama-3.1-8b llama-3.1-8b-fp8 llama-3.2-1b), then two rides in the same call: the
# 8B batch-1 step loop with zeroCopyStaging off / on in one process, FP8 + FP8 KV 512 x with batchDecodePdl off (against the
# closing job's run with it on), and the gpt-fast PyTorch peer on the 1B checkpoint.
set -uo pipefail
CLOSING_LITE=1 bash tools/gpu/session14_closing.sh "$@"
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "step_loop 8B, zeroCopyStaging off / on"
timeout 80 bun bench/step_loop.ts --model "$M8" --max-seq-lens 320 --reps 3 --zero-copy ab > "$OUT/loop_8b.log" 2>&1
echo "rc $?"; grep -E "maxSeqLen|copy ceiling|rror" "$OUT/loop_8b.log" | cut -c1-420
P8=/tmp/hfmodels/llama-3.1-8b-fp8
LLMRT_BATCH_DECODE_PDL=0 thr 8b_512_fp8kv_nopdl "$P8" 512 38
thr_summary 8b_512_fp8kv 8b_512_fp8kv_nopdl
same_ids 8b_512_fp8kv 8b_512_fp8kv_nopdl
stamp "gpt-fast peer (PyTorch, torch.compile, one graph a step), the 1B checkpoint"
timeout 45 python3 bench/gpt_fast_peer.py --model "$M1" --prompt 128 --decode 256 > "$OUT/peer_1b.log" 2>&1
echo "rc $?"; grep PEER_RESULT "$OUT/peer_1b.log" | cut -c1-400
stamp done
