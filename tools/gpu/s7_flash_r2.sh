#!/usr/bin/env bash
# Session 7, issue 16 item 2 (helper flash), round 2: the final configuration (flash_prefill_wg the default prefill
# attention on sm_90; rope_kv_write 16-byte path and add_rmsnorm register path on) — kernel checks vs float64, the kernel
# table beside flash_prefill and torch SDPA, the small kernels bitwise vs the previous code, tests/gpu/flash_prefill and
# tests/gpu/cuda_session (vs transformers), then llama-3.2-1b TTFT 128 / 2048 (bench/latency.ts, defaults, and with
# LLMRT_WGMMA_PREFILL=0) and llama-3.1-8b TTFT of a 32,000-token prompt (bench/prefill_wgmma.ts: wgmmaPrefill off / on).
set -uo pipefail
OUT=${OUT:-/tmp/flash-out}
mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
s() { echo "== [$SECONDS s] $*"; }
s checks
timeout 40 python3 tools/cuda-kernel-check/flash_prefill.py --only checks > "$OUT/checks.log" 2>&1
echo "rc=$?"
grep -E "SUMMARY|FAIL|rror" "$OUT/checks.log" | cut -c1-300 | head -20
s "8b 32k end to end (wgmmaPrefill off / on)"
LLMRT_BENCH_JSON=$OUT/e2e_8b.json timeout 90 bun bench/prefill_wgmma.ts --model /tmp/hfmodels/llama-3.1-8b --prompt-lens 32000 --reps 3 --profile > "$OUT/e2e_8b.log" 2>&1
echo "rc=$?"
grep -vE "^\s*$" "$OUT/e2e_8b.log" | head -24 | cut -c1-200
s "1b ttft (defaults)"
LLMRT_BENCH_JSON=$OUT/latency.json timeout 35 bun bench/latency.ts --model $M --prompt-lens 128,2048 --decode 8 > "$OUT/latency.log" 2>&1
echo "rc=$?"
grep -E "TTFT|rror" "$OUT/latency.log"
sed -n '/^prefill of/,/^llmrt decode/p' "$OUT/latency.log" | head -16
s "1b ttft, LLMRT_WGMMA_PREFILL=0"
LLMRT_WGMMA_PREFILL=0 timeout 30 bun bench/latency.ts --model $M --prompt-lens 128,2048 --decode 8 > "$OUT/latency_off.log" 2>&1
grep -E "TTFT|rror|flash" "$OUT/latency_off.log" | head -6
s "gpu tests"
timeout 60 bun test tests/gpu/flash_prefill.test.ts tests/gpu/cuda_session.test.ts > "$OUT/gpu_test.log" 2>&1
echo "rc=$?"
grep -E "rel L2|pass|fail|\(fail\)" "$OUT/gpu_test.log" | cut -c1-220 | head -30
s "small kernels"
timeout 30 python3 tools/cuda-kernel-check/prefill_small.py --out "$OUT" > "$OUT/small.log" 2>&1
grep -E "SUMMARY|FAIL|old .* new" "$OUT/small.log" | cut -c1-220 | head -12
s "kernel table"
timeout 40 python3 tools/cuda-kernel-check/flash_prefill.py --only time --lens 2048,8192 --long 32768 --out "$OUT" > "$OUT/time.log" 2>&1
grep -E "hd(64|128) T=|differs|failed|rror" "$OUT/time.log" | cut -c1-200
s done
