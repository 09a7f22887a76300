#!/usr/bin/env bash
# Session 12, issue 16 (helper prefill), round 2 (budget 45 s):
#   tiles — prefill attention at head dim 64 (llama-3.2-1b: 32 q / 8 kv heads, causal, one sequence of 2048 and of 128
#           tokens): the entry point (wg = g2n64s3) against 14 other tilings of flash_prefill_wg (5 of them new), each its
#           own NVRTC unit, checked against float64 on 2 packed layouts, then timed as CUDA-graph replays beside SDPA.
#   ttft  — llama-3.2-1b TTFT 128 / 2048, default vs prefillPdl vs prefillPdl + prefillSiluRev + prefillRopeTable, one
#           process (same-job baseline for round 3).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "hd64 tilings at T 2048 / 128"
K=wg,wgv_g2n64s3b2,wgv_g2n64s3ob2,wgv_g2n128s3,wgv_g2n128s3o,wgv_g3n128s2,wgv_g2n64s4o,wgv_g3n64s3o,wgv_g3n64s4o,wgv_g3n64s3,wgv_g4n64s3,wgv_g2n64s4,wgv_g2n64s2b2,wgv_g1n64s2b4,wgv_g1n64s3ob3
timeout 26 python3 tools/cuda-kernel-check/flash_tile_time.py --kinds $K --shapes 64:2048,64:128 --out "$OUT" > "$OUT/tiles.log" 2>&1
echo "rc $?"
grep -E "regs|fail|FAIL|differs|hd64 T= *(2048|128):|SUMMARY|rror" "$OUT/tiles.log" | cut -c1-250
left=$((43 - (SECONDS - _t0)))
stamp "1b TTFT 128 / 2048: default / pdl / pdl+silurev+ropetab ($left s left)"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout "$left" bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 9 \
  --variants default,pdl,pdl+silurev+ropetab > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "ceiling|prompt (128|2048): [a-z0-9+]+ +TTFT|logits|SUMMARY|rror" "$OUT/ttft_1b.log" | cut -c1-230
stamp done
