#!/usr/bin/env bash
# Session 16, issue 16 (helper prefill), round 2 (budget 150 s): llama-3.2-1b's 2048-token TTFT.
# (small — gemmTuneSmall — and prefill_gemm_algos --cold were removed after this round; the script needs commit a855d13.)
#   ttft  — TTFT 128 / 2048, one process, sessions taking turns (median of 15): default / graphs (prefillGraphs, new: a seen
#           step shape replays a CUDA graph of its launch list) / small (gemmTuneSmall, new: buckets below 512 rows tuned
#           with cold weights — the 128-token GEMMs, the pruned last layer's 1-row linears, the lm_head) / graphs+small /
#           default again; logits vs default (bitwise expected), 2 re-runs; eager profiles of default and small.
#   tests — tests/gpu/prefill_graphs.test.ts (graph replays = eager bits), tests/gpu/prefill_batch_invariance.test.ts
#           (round 1's mismatch: a 300-token prompt alone vs beside a 100- / 900-token one, by switch) and
#           tests/gpu/gemm.test.ts's tuneSmall case (rows bitwise equal to the pinned algorithm at M 1…300).
#   algos — bench/prefill_gemm_algos.ts --cold at M 1 and 128 (qkv, o_proj, gate_up, down): the engine's pick, the
#           tuneSmall pick, the fastest candidates (bitwise verdicts against the reference).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "1b TTFT 128 / 2048: default / graphs / small / graphs+small / default"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 50 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 15 \
  --variants default,graphs,small,graphs+small,default --check-runs 2 --profile default,small > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "prompt (128|2048): [a-z0-9+]+ +TTFT|first run|runs|differ|SUMMARY|rror|^profile|gemm (1|128)x" "$OUT/ttft_1b.log" | cut -c1-190
left=$((140 - (SECONDS - _t0)))
stamp "GPU tests prefill_graphs, prefill_batch_invariance ($left s left)"
[ "$left" -gt 10 ] && timeout $((left < 40 ? left : 40)) bun test --timeout 600000 tests/gpu/prefill_graphs.test.ts \
  tests/gpu/prefill_batch_invariance.test.ts > "$OUT/tests.log" 2>&1
grep -E "^\(pass|^\(fail|differ|element|beside|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/tests.log" | cut -c1-200 | head -20
left=$((140 - (SECONDS - _t0)))
stamp "GPU test gemm tuneSmall ($left s left)"
[ "$left" -gt 10 ] && timeout $((left < 25 ? left : 25)) bun test --timeout 600000 tests/gpu/gemm.test.ts -t tuneSmall > "$OUT/small_test.log" 2>&1
grep -E "^\(pass|^\(fail|tuneSmall|differ|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/small_test.log" | cut -c1-200 | head -8
left=$((140 - (SECONDS - _t0)))
stamp "cuBLASLt survey, cold weights, M 1 / 128 ($left s left)"
[ "$left" -gt 8 ] && LLMRT_BENCH_JSON=$OUT/algos_small.json timeout "$left" bun bench/prefill_gemm_algos.ts --shapes qkv,o_proj,gate_up,down \
  --ms 1,128 --cold --top 3 --max-timed 60 > "$OUT/algos_small.log" 2>&1
grep -E "^==|#[0-9] |REF|rror" "$OUT/algos_small.log" | cut -c1-190 | head -40
stamp done
