#!/usr/bin/env bash
# quant r2 (measurements): ring GEMV (L2-prefetched scales) and the QG_LOOP persistent grid vs quant_gemv_fused; AWQ g128 + GPTQ 8-bit per-channel
# checkpoints of llama-3.2-1b / llama-3.1-8b (1B checked bitwise); e2e batch 1 bf16 vs both (quantPdl on = default,
# quantRing off/on); 64 x (128,128) throughput bf16 / AWQ / GPTQ8.
STAGES="tune packboth1b packboth8b e2e8b e2e1b tput1b tput8b tests" VARIANTS="MINB=3;RING;LOOP=1;RING,QR_NS=3" TUNE_S=45 \
  PACK_S=40 PACK8B_S=60 NOCHECK8B=1 AB=quantRing ABREPS=1 NOREF1B=--no-ref E2E8B_S=90 E2E1B_S=45 TPUT_GPTQ8=1 TPUT_S=45 \
  bash tools/gpu/quant_s7.sh
