#!/usr/bin/env bash
# Session 12, issue 16 (helper prefill), round 3 (budget 45 s): the decision run for prefillWgOvl.
#   ttft  — llama-3.2-1b TTFT 128 / 2048, one process, sessions taking turns: default vs ovl (prefillWgOvl: hd 64 prefill
#           attention on flash_prefill_wg_ovl_bf16_hd64 = r2's wgv_g2n64s4o) vs pdl vs pdl+ovl: TTFT (median of 11), device
#           step, logits (ovl: relative L2 and argmax against default; not the same bits by design); eager profile of ovl.
#   test  — tests/gpu/flash_prefill.test.ts (now with the ovl entry point: vs float64 and vs paged_attention_prefill_mma).
#   tiles — hd 64 at T 2048: wg vs g2n64s4o vs two more OVL rings (g2n64s3o, g2n64s5o), with what is left.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "1b TTFT 128 / 2048: default / ovl / pdl / pdl+ovl"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 19 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 11 \
  --variants default,ovl,pdl,pdl+ovl --profile ovl > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "ceiling|prompt (128|2048): [a-z0-9+]+ +TTFT|logits|SUMMARY|rror|^profile|flash" "$OUT/ttft_1b.log" | cut -c1-260
left=$((42 - (SECONDS - _t0)))
stamp "GPU test flash_prefill ($left s left)"
timeout 16 bun test --timeout 600000 tests/gpu/flash_prefill.test.ts > "$OUT/flash_test.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail|skip)$|wg_ovl|rror" "$OUT/flash_test.log" | cut -c1-220 | head -12
left=$((42 - (SECONDS - _t0)))
stamp "hd64 OVL rings at T 2048 ($left s left)"
[ "$left" -gt 5 ] && timeout "$left" python3 tools/cuda-kernel-check/flash_tile_time.py --kinds wg,wgv_g2n64s4o,wgv_g2n64s3o,wgv_g2n64s5o \
  --shapes 64:2048 --no-sdpa --out "$OUT" > "$OUT/tiles.log" 2>&1
grep -E "fail|FAIL|differs|hd64 T= *2048:|SUMMARY|rror" "$OUT/tiles.log" | cut -c1-250
stamp done
