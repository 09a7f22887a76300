#!/usr/bin/env bash
# quant r1 (validation): pack + check 1B AWQ, 1B e2e with quantPdl off/on (no reference engine), the ring GEMV kernels
# vs quant_gemv_fused (bits + timing), pack + check 8B AWQ (load time), 8B e2e with what time is left.
STAGES="pack1b e2e1b tune pack8b e2e8b" PACK1B_GPTQ=0 NOREF1B=--no-ref E2E1B_S=45 TUNE_S=50 PACK8B_S=70 E2E8B_S=100 bash tools/gpu/quant_s7.sh
