#!/usr/bin/env bash
# Session 15's closing figures on merged main: session 14's closing job unchanged (its header lists what it runs and the
# checkpoints it needs: hfrefs llama-3.1-8b llama-3.1-8b-fp8 llama-3.2-1b). Queued as the first job of the last batched call.
exec bash tools/gpu/session14_closing.sh "$@"
