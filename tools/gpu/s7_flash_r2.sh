#!/usr/bin/env bash
# Session 7, issue 16 item 2 (helper flash), round 2: flash_prefill_wg (Hopper wgmma, sm_90a; r1: the entry points pass
# tests/gpu/flash_prefill) — every tiling vs float64 (the entry points first), the kernel table beside flash_prefill and
# torch SDPA (hd 64 / 128 at T 2048, hd 128 at 32768), llama-3.1-8b TTFT of a 32,000-token prompt and llama-3.2-1b TTFT
# 128 / 2048 with wgmmaPrefill off / on in one process (bench/prefill_wgmma.ts), then tests/gpu/flash_prefill and
# tests/gpu/cuda_session (vs transformers) with LLMRT_WGMMA_PREFILL=1. rope_kv_write's 16-byte path is the default here.
set -uo pipefail
OUT=${OUT:-/tmp/flash-out}
mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
s() { echo "== [$SECONDS s] $*"; }
s checks
timeout 40 python3 tools/cuda-kernel-check/flash_prefill.py --only checks --wg variants > "$OUT/checks.log" 2>&1
echo "rc=$?"
grep -E "SUMMARY|FAIL|rror" "$OUT/checks.log" | cut -c1-300 | head -20
grep -E "flash_wg" "$OUT/checks.log" | grep -E "seqs=\[\(0, 1024\)\]|nH=8 nKV=8" | cut -c1-200 | head -8
s timing
timeout 40 python3 tools/cuda-kernel-check/flash_prefill.py --only time --wg variants --lens 2048 --long 32768 --out "$OUT" > "$OUT/time.log" 2>&1
echo "rc=$?"
grep -E "hd(64|128) T=|differs|failed|rror" "$OUT/time.log" | grep -v "^  \.\." | cut -c1-200
grep -qE "hd128 T= 32768" "$OUT/time.log" || grep -E "^  \.\." "$OUT/time.log" | cut -c1-200
s "8b 32k end to end (wgmmaPrefill off / on)"
LLMRT_BENCH_JSON=$OUT/e2e_8b.json timeout 90 bun bench/prefill_wgmma.ts --model /tmp/hfmodels/llama-3.1-8b --prompt-lens 32000 --reps 3 --profile > "$OUT/e2e_8b.log" 2>&1
echo "rc=$?"
grep -vE "^\s*$" "$OUT/e2e_8b.log" | head -24 | cut -c1-200
s "1b end to end (wgmmaPrefill off / on)"
LLMRT_BENCH_JSON=$OUT/e2e_1b.json timeout 30 bun bench/prefill_wgmma.ts --model $M --prompt-lens 128,777,2048 --reps 7 --profile > "$OUT/e2e_1b.log" 2>&1
echo "rc=$?"
grep -vE "^\s*$" "$OUT/e2e_1b.log" | head -24 | cut -c1-200
s "gpu tests, LLMRT_WGMMA_PREFILL=1"
LLMRT_WGMMA_PREFILL=1 timeout 50 bun test tests/gpu/flash_prefill.test.ts tests/gpu/cuda_session.test.ts > "$OUT/gpu_test.log" 2>&1
echo "rc=$?"
grep -E "rel L2|pass|fail|\(fail\)|skip" "$OUT/gpu_test.log" | cut -c1-220 | head -40
s done
