#!/usr/bin/env bash
# Session 10, issue 16 (helper prefill), round 2 (budget 45 s).
#   kernel — prefill attention, each kernel its own NVRTC unit (compiled in parallel): vs float64 on 2 packed layouts,
#            then causal one sequence, 32 q / 8 kv heads: hd 64 T 2048 (llama-3.2-1b) and hd 128 T 32000 (llama-3.1-8b),
#            beside torch SDPA (cuDNN). ref_flash / ref_wg = main's kernels (tools/gpu/s10_ref.tgz, made at queue time)
#            against this branch's flash / wg (K and V chunks from one address computation; full tiles skip the
#            mask compares: same outputs, checked bitwise); new tilings hd128 g3n64s4o / s5o (K/V two / three tiles
#            ahead instead of one), g1n64s2b2 (two one-warpgroup blocks per SM); hd64 g1n64s3ob3, g1n64s4ob2,
#            g1n128s3ob2.
#   8b     — llama-3.1-8b, 32,000-token prompt, one process: default (this branch's wg kernel) vs resid+wide.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
mkdir -p /tmp/s10ref && tar xzf tools/gpu/s10_ref.tgz -C /tmp/s10ref
stamp "kernel tilings"
timeout 17 python3 tools/cuda-kernel-check/flash_tile_time.py --shapes 64:2048,128:32000 --out "$OUT" --ref-dir /tmp/s10ref/s10_ref \
  --kinds ref_flash,flash,ref_wg,wg,wgv_g3n64s4o,wgv_g3n64s5o,wgv_g1n64s2b2,wgv_g1n64s3ob3,wgv_g1n64s4ob2,wgv_g1n128s3ob2 > "$OUT/tiles.log" 2>&1
echo "rc $?"
grep -E "regs|FAIL|SUMMARY|hd(64|128) T=|rror|failed" "$OUT/tiles.log" | cut -c1-240 | head -40
left=$((44 - (SECONDS - _t0)))
stamp "8b 32k: default vs resid+wide ($left s left)"
LLMRT_BENCH_JSON=$OUT/ttft_8b.json timeout "$left" bun bench/prefill_ttft.ts --model "$M8" --prompt-lens 32000 --reps 2 \
  --variants default,resid+wide > "$OUT/ttft_8b.log" 2>&1
echo "rc $?"
grep -E "^GPU|ceiling|prompt 32000|SUMMARY|rror" "$OUT/ttft_8b.log" | cut -c1-300
stamp done
