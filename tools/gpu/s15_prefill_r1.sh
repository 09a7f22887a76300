#!/usr/bin/env bash
# Session 15, issue 16 (helper prefill), round 1 (budget 80 s): llama-3.2-1b's prefill attention at its exact shape
# (T 2048, 32 q / 8 kv heads, hd 64, causal) against torch SDPA's backends, and two new switches (both off):
#   prefillExpPoly  — 3 of a row's 8 column tiles' exponentials by a polynomial on the FMA pipe instead of MUFU ex2 (at
#                     hd 64 the SM's 16 MUFU results a clock are as busy as its tensor cores); not the same bits.
#   prefillHeadPack — a block takes 64 query rows of the 4 query heads of one kv head (4 warpgroups share each K/V tile;
#                     no warpgroup idles on the tile past its rows); the same bits as the default (causal, no window).
#   tiles — flash_tile_time.py at 64:2048: wgt (the engine's entry) / wgtx / wgth / wgthx (the new entry points) /
#           g2n64s3b2 (wgt's tiling, 2 blocks an SM, non-scan: the p variants' control) / g2n64s3p{2,3,5} (PX of a row's 8
#           column tiles by polynomial) / g2n64s3h (2 heads a block) / g4n64s4h, g4n64s4oh (4 heads, 4 stages, OVL) /
#           g2n64s4o (session 12's fastest alone) / g2n64s4op3; float64 checks; SDPA cuDNN / FLASH / EFFICIENT, with
#           enable_gqa and with K / V repeated.
#   ttft  — llama-3.2-1b TTFT 128 / 2048, one process, sessions taking turns: default / xpoly / hpack / hpack+xpoly (median
#           of 11), logits vs default (hpack: bitwise expected), eager profiles (the attention's time in the step).
# Both switches measured no faster and were removed after this round (their code: commits 63a1e41, 1c18534, e668154).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "hd64 T 2048 tilings + SDPA backends"
timeout 36 python3 tools/cuda-kernel-check/flash_tile_time.py --shapes 64:2048 --sdpa-all --out "$OUT" \
  --kinds wgt,wgtx,wgth,wgthx,wgv_g2n64s3b2,wgv_g2n64s3p2,wgv_g2n64s3p3,wgv_g2n64s3p5,wgv_g2n64s3h,wgv_g4n64s4h,wgv_g4n64s4oh,wgv_g2n64s4o,wgv_g2n64s4op3 \
  > "$OUT/tiles.log" 2>&1
echo "rc $?"
grep -E "FAIL|differs|regs|sdpa|hd64 T= *2048:|SUMMARY|rror" "$OUT/tiles.log" | cut -c1-200 | head -48
left=$((76 - (SECONDS - _t0)))
stamp "1b TTFT 128 / 2048: default / xpoly / hpack / hpack+xpoly ($left s left)"
[ "$left" -gt 8 ] && LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout "$left" bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 \
  --reps 11 --variants default,xpoly,hpack,hpack+xpoly --profile default,xpoly,hpack,hpack+xpoly > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "prompt (128|2048): [a-z0-9+]+ +TTFT|prompt 2048: logits|SUMMARY|rror|^profile|flash_prefill" "$OUT/ttft_1b.log" | cut -c1-200
stamp done
