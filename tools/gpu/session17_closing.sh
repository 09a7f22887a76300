#!/usr/bin/env bash
# Session 17's closing figures on merged main (defaults as committed): session 14's closing job in its lite form
# (CLOSING_LITE=1: one FP8 512 run; checkpoints: hfrefs llama-3.1-8b llama-3.1-8b-fp8 llama-3.2-1b), then the gpt-fast
# PyTorch peer on the 1B checkpoint in the same call (issue 16 asks for it beside llmrt's batch-1 figure).
set -uo pipefail
CLOSING_LITE=1 bash tools/gpu/session14_closing.sh "$@"
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "gpt-fast peer (PyTorch, torch.compile, one graph a step), the 1B checkpoint"
timeout 45 python3 bench/gpt_fast_peer.py --model "$M1" --prompt 128 --decode 256 > "$OUT/peer_1b.log" 2>&1
echo "rc $?"; grep PEER_RESULT "$OUT/peer_1b.log" | cut -c1-400
