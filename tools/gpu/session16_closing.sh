#!/usr/bin/env bash
# Session 16's closing figures on merged main: session 14's closing job in its lite form (CLOSING_LITE=1: without the
# second FP8 512 run and the gpt-fast peer, to fit the device time left; checkpoints: hfrefs llama-3.1-8b llama-3.1-8b-fp8
# llama-3.2-1b). Queued as the first job of the session's last batched call.
CLOSING_LITE=1 exec bash tools/gpu/session14_closing.sh "$@"
