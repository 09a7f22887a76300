#!/usr/bin/env bash
# Session 5, issue 12: the llama-3.1-8b round's quant job (queued as quant-8b): the GEMV tests, then
# bench/quant_e2e.ts W4A16 (RTN g128 + zero points) beside bf16, batch 1, in the same run.
STAGES="tests e2e8b" E2E8B_S=${E2E8B_S:-72} bash tools/gpu/quant_s5.sh
