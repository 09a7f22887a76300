#!/usr/bin/env bash
# quant r3 (the numbers r2 lost: its device call ended during e2e8b): AWQ g128 + GPTQ 8-bit per-channel checkpoints
# (layouts checked bitwise in r1/r2), batch-1 e2e bf16 vs both with quantPdl off/on (on = default), 1B then 8B, then
# 64 x (128,128) throughput bf16 / AWQ / GPTQ8.
STAGES="packboth1b e2e1b packboth8b e2e8b tput1b tput8b" NOCHECK=1 PACK_S=40 PACK8B_S=60 AB=quantPdl ABREPS=1 \
  NOREF1B=--no-ref E2E1B_S=40 E2E8B_S=80 TPUT_GPTQ8=1 TPUT_S=40 bash tools/gpu/quant_s7.sh
