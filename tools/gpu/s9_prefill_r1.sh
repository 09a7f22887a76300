#!/usr/bin/env bash
# Session 9, issue 16 item 2 (helper prefill), round 1 (budget 80 s): flash_prefill_ws (warp-specialized wgmma prefill
# attention: a producer warpgroup streams K/V through an mbarrier ring, 2-3 consumer warpgroups never meet at a CTA
# barrier in the key loop, 128-key tiles, setmaxnreg).
#   checks — every ws entry point / variant vs float64 (and the mma kernel) on the harness's packed layouts, hd 128, 64.
#   time   — causal one-sequence prefill, 32 q / 8 kv heads: hd 128 at T 32768 (current flash_prefill_wg, ws entry and
#            variants, torch SDPA in the same process) and hd 64 / 128 at T 2048.
#   e2e    — llama-3.1-8b TTFT of a 32,000-token prompt: default (flash_prefill_wg) vs ws, one process.
set -uo pipefail
OUT=${OUT:-/tmp/prefill-out}
mkdir -p "$OUT"
s() { echo "== [$SECONDS s] $*"; }
s checks
timeout 26 python3 tools/cuda-kernel-check/flash_prefill.py --only checks --quick --wg on --ws variants > "$OUT/checks.log" 2>&1
rc=$?
echo "rc=$rc"
grep -E "SUMMARY|FAIL|rror" "$OUT/checks.log" | cut -c1-300 | head -12
grep -E "flash_ws" "$OUT/checks.log" | grep -E "nKV=8 seqs=\[\(0, 1024\)\]|seqs=\[\(0, 300\)\]" | cut -c1-200 | head -8
s "time hd128 32768 (+ 2048)"
timeout 20 python3 tools/cuda-kernel-check/flash_prefill.py --only time --wg on --ws variants --lens 2048 --long 32768 --skip-slow --out "$OUT" > "$OUT/time.log" 2>&1
echo "rc=$?"
grep -E "hd(64|128) T=|differs|failed|rror" "$OUT/time.log" | grep -v "^  \.\." | cut -c1-200
grep -qE "hd128 T= 32768" "$OUT/time.log" || grep -E "^  \.\." "$OUT/time.log" | cut -c1-200
if [ "$rc" = 0 ]; then
  left=$((78 - SECONDS))
  s "8b 32k end to end: default (wg) vs ws (timeout $left s)"
  LLMRT_BENCH_JSON=$OUT/ttft_8b.json timeout "$left" bun bench/prefill_ttft.ts --model /tmp/hfmodels/llama-3.1-8b --prompt-lens 32000 --reps 2 \
    --variants default,ws > "$OUT/ttft_8b.log" 2>&1
  echo "rc=$?"
  grep -E "^GPU|ceiling|prompt 32000|SUMMARY|rror" "$OUT/ttft_8b.log" | cut -c1-260
fi
s done
