#!/usr/bin/env bash
# Session 5, issue 12: the llama-3.1-8b round's quant job (queued as quant-8b): bench/quant_e2e.ts W4A16 (RTN g128 +
# zero points) beside bf16, batch 1, in the same run.
STAGES=e2e8b bash tools/gpu/quant_s5.sh
