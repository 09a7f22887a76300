#!/usr/bin/env bash
# Session 8, issue 16 item 2 (helper prefill), round 2 (budget 90 s): the new defaults (last-layer pruning, fp32-out
# lm_head buckets, batch-invariant GEMMs tuned among bitwise-verified algorithms, wgmmaPrefill on for head dim 128).
#   tests — tests/gpu/cuda_session.test.ts (vs transformers float32 where hfrefs made the references: qwen3-0.6b is
#           head dim 128, so it now prefills on flash_prefill_wg; llama-3.2-1b prunes its last layer) and
#           tests/gpu/flash_prefill.test.ts.
#   8b   — bench/prefill_ttft.ts at 2048 tokens: default (wgmma), noprune (pruning bitwise on the wgmma kernel?), flash
#          (wgmmaPrefill off), flash+noinv — how far a rounding-level change moves this random-weight model's logits
#          (r1: wgmma vs flash rel L2 4.2e-2), pairwise.
#   1b   — bench/latency.ts --hf: TTFT 128 / 2048 beside transformers eager in the same run (last: what time is left).
set -uo pipefail
OUT=${OUT:-/tmp/prefill-out}
mkdir -p "$OUT"
s() { echo "== [$SECONDS s] $*"; }
s "gpu tests"
timeout 32 bun test --timeout 600000 tests/gpu/cuda_session.test.ts tests/gpu/flash_prefill.test.ts > "$OUT/gpu_tests.log" 2>&1
echo "rc=$?"
grep -E "^\(pass|^\(fail|^\(skip|^ *[0-9]+ (pass|fail|skip)$|rel L2|max abs|logits" "$OUT/gpu_tests.log" | cut -c1-220 | head -40
s "8b 2048: default (wgmma) / noprune / flash / flash+noinv "
timeout 38 bun bench/prefill_ttft.ts --model /tmp/hfmodels/llama-3.1-8b --prompt-lens 2048 --reps 3 --variants default,noprune,flash,flash+noinv \
  > "$OUT/ttft_8b.log" 2>&1
echo "rc=$?"
grep -E "^GPU|ceiling|prompt 2048|SUMMARY|rror" "$OUT/ttft_8b.log" | cut -c1-260
left=$((87 - SECONDS))
[ "$left" -lt 5 ] && left=5
s "1b latency vs transformers eager (timeout $left s)"
LLMRT_BENCH_JSON=$OUT/latency_1b.json timeout "$left" bun bench/latency.ts --model /tmp/hfmodels/llama-3.2-1b --prompt-lens 128,2048 --decode 32 --hf \
  > "$OUT/latency_1b.log" 2>&1
echo "rc=$?"
grep -E "copy|TTFT|transformers|^\| " "$OUT/latency_1b.log" | cut -c1-220 | head -14
s done
