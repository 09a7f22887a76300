#!/usr/bin/env bash
# Session 11, helper fp8 (issue 14), round 1 (budget 45 s; llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights).
# 1. TTFT of a 2048-token prompt, one process, sessions taking turns (bench/prefill_ttft.ts, median of 9):
#    default | fp8resid+fresh+fp8flat (fp8FreshPrompt: no kv_dequant_prefix launch for a new prompt; fp8GemmResidual: the
#    FP8 o_proj / down GEMMs add into the residual, the next fused norm quantizes without the add; fp8FlatQuant: SiLU·mul
#    quantize and o_proj's quantize one chunk a thread) | + fp8attn (fp8AttnQuant: flash_prefill_wg writes o_proj's e4m3
#    input; must be bitwise the previous variant);
#    logits of the 2048-token prompt vs default; per-launch profiles of default and the last variant.
# 2. (the time left) flash_prefill_wg tilings at hd 128, T 2048 (the 8B's prefill attention: 32 × ~195 µs), float64 checks.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "8B FP8 + FP8 KV TTFT 2048: default vs fresh vs fp8resid+fresh"
timeout 31 bun bench/prefill_ttft.ts --model $P8 --prompt-lens 2048 --reps 9 --variants default,fp8resid+fresh+fp8flat,fp8resid+fresh+fp8flat+fp8attn \
  --profile default,fp8resid+fresh+fp8flat+fp8attn > "$OUT/ttft.log" 2>&1
echo "rc $?"; grep -E "^prompt|^profile|^  |SUMMARY|rror|sessions in|ceiling" "$OUT/ttft.log" | grep -v "first run" | cut -c1-300 | head -70
left=$((44 - (SECONDS - _t0)))
[ "$left" -gt 4 ] || { stamp "no time left"; exit 0; }
stamp "flash_prefill_wg tilings, hd 128 T 2048 ($left s left)"
timeout "$left" python3 tools/cuda-kernel-check/flash_tile_time.py --shapes 128:2048 --no-sdpa --out "$OUT" \
  --kinds wg,wgv_g3n64s2,wgv_g2n64s3o,wgv_g2n64s2b2,wgv_g2n64s3,wgv_g1n64s2b2,wgv_g3n64s4o > "$OUT/tiles.log" 2>&1
echo "rc $?"
grep -E "regs|FAIL|SUMMARY|hd(64|128) T=|rror|failed" "$OUT/tiles.log" | grep -v "^  \.\." | cut -c1-240 | head -30; grep -q SUMMARY "$OUT/tiles.log" || tail -5 "$OUT/tiles.log"
stamp done
