#!/usr/bin/env bash
# quant r1: pack + check 1B (AWQ, GPTQ8), 1B e2e with quantPdl off/on (no reference engine), pack + check 8B AWQ, 8B e2e.
STAGES="pack1b e2e1b pack8b e2e8b" NOREF1B=--no-ref E2E1B_S=50 PACK8B_S=80 E2E8B_S=110 bash tools/gpu/quant_s7.sh
