#!/usr/bin/env bash
# Session 16, issue 16 (helper prefill), round 1 (budget 150 s): llama-3.2-1b's 2048-token TTFT.
# (chunks, tvar, cols and their code were removed after this round: commit 2c1cc3a; the script needs the commits before it.)
#   algos — bench/prefill_gemm_algos.ts: every cuBLASLt algorithm for qkv 2048x3072x2048 and o_proj 2048x2048x2048
#           (heuristic incl. split-K, split-K variants, each heuristic algorithm id over its tile / stage / cluster ids),
#           timed warm on random operands, the 40 fastest checked bitwise against the batch-invariant reference (M 256
#           pick); beside the engine's choice (bucketed + tuned 32) and the heuristic's; then gate_up at M 1024 / 2048 and
#           down at 2048 (heuristic + split-K only) for the chunking question.
#   ttft  — TTFT 128 / 2048, one process, sessions taking turns (median of 11): default / chunks (prefillMlpChunks, new:
#           gate_up + silu_mul by 1024-row chunks) / tvar (gemmTuneVariants, new: bucket tuning also over re-configured
#           cuBLASLt algorithms, each bitwise-checked against the reference) / cols (prefillMlpColChunks, new: gate_up as
#           2 column chunks of a gate and an up GEMM each + silu_mul_split_bf16, the chunk GEMMs held to the whole-width
#           reference's bits by GemmArgs.refN) / tvar+cols / default again; logits vs default (bitwise expected), 1 re-run;
#           eager profiles of default, chunks, tvar and cols (profileEagerStep now keeps the GPU busy while enqueuing:
#           the embedding's real time).
#   tests — tests/gpu/prefill_mlp_chunks.test.ts (chunks and cols vs default bitwise at 2048 tokens, cols batch-invariant,
#           small random Llama), tests/gpu/silu_mul_split.test.ts (silu_mul_bf16's bits) and tests/gpu/gemm.test.ts's
#           tuneVariants case (rows bitwise equal to the pinned algorithm at M 600…2100) and refN case (4096-column blocks
#           at column offsets 0 / 1 / 3 bitwise equal to the whole-width GEMM's, M 1024…2100).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "1b TTFT 128 / 2048: default / chunks / tvar / cols / tvar+cols / default"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 50 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 11 \
  --variants default,chunks,tvar,cols,tvar+cols,default --check-runs 1 --profile default,chunks,tvar,cols > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "prompt (128|2048): [a-z0-9+]+ +TTFT|first run|runs|differ|SUMMARY|rror|^profile|embedding|silu_mul|gemm (2048|1024)x" "$OUT/ttft_1b.log" | cut -c1-190
left=$((140 - (SECONDS - _t0)))
stamp "cuBLASLt survey: qkv / o_proj at M 2048 with re-configured variants ($left s left)"
LLMRT_BENCH_JSON=$OUT/algos_qo.json timeout 40 bun bench/prefill_gemm_algos.ts --shapes qkv,o_proj --ms 2048 --variants --top 14 \
  > "$OUT/algos_qo.log" 2>&1
echo "rc $?"
grep -E "^==|#[0-9] |REF|same-rows|split|rror" "$OUT/algos_qo.log" | cut -c1-190 | head -60
left=$((140 - (SECONDS - _t0)))
stamp "GPU tests prefill_mlp_chunks, silu_mul_split, gemm tuneVariants ($left s left)"
[ "$left" -gt 10 ] && timeout $((left < 35 ? left : 35)) bun test --timeout 600000 tests/gpu/prefill_mlp_chunks.test.ts tests/gpu/silu_mul_split.test.ts \
  > "$OUT/chunks_test.log" 2>&1
grep -E "^\(pass|^\(fail|differs|element|cols vs|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/chunks_test.log" | cut -c1-200 | head -10
left=$((140 - (SECONDS - _t0)))
[ "$left" -gt 10 ] && timeout $((left < 30 ? left : 30)) bun test --timeout 600000 tests/gpu/gemm.test.ts -t "tuneVariants|refN" > "$OUT/tvar_test.log" 2>&1
grep -E "^\(pass|^\(fail|tuneVariants|refN|differ|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/tvar_test.log" | cut -c1-200 | head -12
left=$((140 - (SECONDS - _t0)))
stamp "cuBLASLt survey: gate_up at M 1024 / 2048, down at 2048 ($left s left)"
[ "$left" -gt 8 ] && LLMRT_BENCH_JSON=$OUT/algos_mlp.json timeout "$left" bun bench/prefill_gemm_algos.ts --shapes gate_up,gate_up_col,down \
  --ms 1024,2048 --top 4 --max-timed 40 > "$OUT/algos_mlp.log" 2>&1
grep -E "^==|#[0-9] |REF|rror" "$OUT/algos_mlp.log" | cut -c1-190 | head -30
stamp done
