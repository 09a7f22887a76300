#!/usr/bin/env bash
# Session 19's closing rides (the call after tools/gpu/session19_closing.sh, checkpoints already built): the 8B batch-1 step
# loop with zeroCopyStaging off / on in one process, and the gpt-fast PyTorch peer on the 1B checkpoint.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "step_loop 8B, zeroCopyStaging off / on"
timeout 80 bun bench/step_loop.ts --model "$M8" --max-seq-lens 320 --reps 3 --zero-copy ab > "$OUT/loop_8b.log" 2>&1
echo "rc $?"; grep -E "maxSeqLen|copy ceiling|rror" "$OUT/loop_8b.log" | cut -c1-420
stamp "gpt-fast peer (PyTorch, torch.compile, one graph a step), the 1B checkpoint"
timeout 45 python3 bench/gpt_fast_peer.py --model "$M1" --prompt 128 --decode 256 > "$OUT/peer_1b.log" 2>&1
echo "rc $?"; grep PEER_RESULT "$OUT/peer_1b.log" | cut -c1-400
stamp done
