#!/usr/bin/env bash
# Session 12, helper fp8 (issue 14), round 2 (budget 45 s; llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights).
# r1: the 32,768-token prefill step spent 70.9 ms in flash_prefill_wg_q8 (2.2 ms a layer for 256 prompts of 128 tokens;
# one block an SM, each walking the step's 256 sequences to find its tile) and the 512-row decode step 199 us in
# fp8_quantize_flat. One process, both new same-bits switches ON through the environment (fp8DecodeAttnQuant,
# prefillTileScan): 512 × (128,128) output tok/s (r1's default: 29,380.6) and its greedy ids (sha256 vs r1's default ids:
# dcbd65ae512b3b3c...; equal only if the decode GEMMs' tuned picks match r1's), the phases; then, same process, sessions in
# turn: the 256 × 128 prefill step and the 512-row decode graph, both switches off vs on, and the logits of a prefill + two
# 256-row decode steps compared bit for bit between them.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
phases() { sed -n '/steps of the timed run/,/^  step 3:/p' "$OUT/t_$1.log" | grep -v "^| ---" | grep -iE "^\| (decode|prefill|mixed)" | cut -c1-200 | head -4; }
LLMRT_FP8_DECODE_ATTN_QUANT=1 LLMRT_PREFILL_TILE_SCAN=1 thr s12 $P8 512 43 --profile-steps --ab-rows 512 --ab-prefill 256 \
  --ab-opts '{"default":{"fp8DecodeAttnQuant":false,"prefillTileScan":false},"s12":{"fp8DecodeAttnQuant":true,"prefillTileScan":true}}'
phases s12
grep -E "^A/B|^  default|^  s12|^  logits|rror" "$OUT/t_s12.log" | cut -c1-600
thr_summary s12
echo "ids sha256 $(sha256sum "$OUT/ids_s12.json" 2> /dev/null | cut -c1-16) (r1 default: dcbd65ae512b3b3c)"
stamp done
