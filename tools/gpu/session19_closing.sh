#!/usr/bin/env bash
# Session 19's closing figures on merged main (defaults as committed: zeroCopyStaging and batchDecodePdl new and on): session
# 14's closing job in its lite form (CLOSING_LITE=1; checkpoints: hfrefs llama-3.1-8b llama-3.1-8b-fp8 llama-3.2-1b). The
# rides (tools/gpu/session19_rides.sh) follow in the next call on the same machine.
CLOSING_LITE=1 exec bash tools/gpu/session14_closing.sh "$@"
