#!/usr/bin/env bash
# Session 8, issue 16 item 2 (helper prefill), round 1 (budget 150 s): TTFT on llama-3.2-1b and llama-3.1-8b.
#   1b   — bench/prefill_ttft.ts: sessions default (last-layer pruning on, fp32-out lm_head buckets, batch-invariant
#          GEMMs tuned among bitwise-verified algorithms), notune, noprune, wgmma, noinv in one process; logits of each
#          vs default (bitwise), TTFT 128 / 2048 (sessions alternating), host enqueue vs device time, eager profiles of
#          default and notune against an 8192^3 GEMM ceiling timed in the same process, the lm_head GEMM under pinned /
#          bucketed / heuristic algorithms.
#   gemm — bench/prefill_gemm.ts: the 1B linears at M 2048 under each cuBLASLt choice (is timing candidates worth it?).
#   tests — tests/gpu/gemm.test.ts (bucket algorithms bitwise), tests/gpu/cuda_session.test.ts (stories260k: chunked
#          prefill, eager steps and a 4-prompt batch equal single runs; vs transformers where references exist).
#   8b   — llama-3.1-8b TTFT of a 2048- and a 32,000-token prompt with wgmmaPrefill off / on (pruning on both), last.
set -uo pipefail
OUT=${OUT:-/tmp/prefill-out}
mkdir -p "$OUT"
s() { echo "== [$SECONDS s] $*"; }
s "1b A/B"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 45 bun bench/prefill_ttft.ts --model /tmp/hfmodels/llama-3.2-1b --prompt-lens 128,2048 --reps 9 \
  --variants default,notune,noprune,wgmma,noinv --profile default,notune --lm-head > "$OUT/ttft_1b.log" 2>&1
echo "rc=$?"
grep -E "^GPU|ceiling|prompt (128|2048): |GEMMs|^profile|lm_head|bucket checks|SUMMARY|rror" "$OUT/ttft_1b.log" | cut -c1-230
grep -E "^  (gemm|flash|add_|silu|rope|rmsnorm|embedding|sample|gather)" "$OUT/ttft_1b.log" | head -40 | cut -c1-160
s "1b prefill GEMMs at M 2048: pinned / bucketed / heuristic / tuned (top-8 timed, not invariant)"
LLMRT_BENCH_JSON=$OUT/gemm_1b.json timeout 15 bun bench/prefill_gemm.ts --models 1b --ms 2048 --refs 256 --tuned > "$OUT/gemm_1b.log" 2>&1
echo "rc=$?"
grep -E "ceiling|^\| 1b|M=2048|bucketed:|rror" "$OUT/gemm_1b.log" | cut -c1-200
s "gpu tests"
timeout 30 bun test --timeout 600000 tests/gpu/gemm.test.ts tests/gpu/cuda_session.test.ts > "$OUT/gpu_tests.log" 2>&1
echo "rc=$?"
grep -E "^\(pass|^\(fail|^\(skip|^ *[0-9]+ (pass|fail|skip)$|rel|max abs" "$OUT/gpu_tests.log" | cut -c1-200 | head -30
left=$((146 - SECONDS))
[ "$left" -gt 72 ] && left=72
s "8b 32k, wgmmaPrefill off / on (timeout $left s)"
LLMRT_BENCH_JSON=$OUT/ttft_8b.json timeout "$left" bun bench/prefill_ttft.ts --model /tmp/hfmodels/llama-3.1-8b --prompt-lens 2048,32000 --reps 2 \
  --variants default,wgmma --profile wgmma > "$OUT/ttft_8b.log" 2>&1
echo "rc=$?"
grep -E "^GPU|ceiling|prompt (2048|32000)|GEMMs|^profile|SUMMARY|rror" "$OUT/ttft_8b.log" | cut -c1-230
grep -E "^  (gemm|flash|add_|silu|rope|rmsnorm|embedding|sample|gather)" "$OUT/ttft_8b.log" | head -34 | cut -c1-160
s done
