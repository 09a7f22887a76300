#!/usr/bin/env bash
# Session 11, issue 16 item 2 (helper prefill), round 2 (budget 45 s).
#   ttft — llama-3.2-1b, prompts 128 / 2048, one process, sessions alternating: default vs prefillPdl (now with
#          rope_kv_write_pdl) vs pdl+rowKernels vs pdl+rowKernels+prefillPrefetch (the next GEMM's weights into L2 before the
#          PDL wait): TTFT (median of 9), logits bitwise; eager profiles of default and of the prefetch variant (which
#          GEMMs get faster with warm weights).
#   gemm — why r1's in-step GEMMs run 14-25% below the same GEMMs alone: the 4 linears at M 2048, random A, tuned
#          bucketed algorithm, B one buffer (what fits stays in L2 between runs) vs --cold (a new 1 GiB-region slice a run).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "1b TTFT 128 / 2048: default / pdl / pdl+norm / pdl+norm+prefetch"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 26 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 9 \
  --variants default,pdl,pdl+norm,pdl+norm+prefetch --profile default,pdl+norm+prefetch > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "ceiling|prompt (128|2048): [a-z+]+ +TTFT|back to back|GEMMs|SUMMARY|rror|^profile|gemm 2048|flash|rmsnorm|rope|silu" "$OUT/ttft_1b.log" | cut -c1-220
for mode in warm cold; do
  stamp "prefill GEMMs alone, A random, B $mode"
  LLMRT_BENCH_JSON=$OUT/gemm_$mode.json timeout 8 bun bench/prefill_gemm.ts --models 1b --ms 2048 --refs 256 --tuned --random-a \
    --modes bucketed+tuned $([ $mode = cold ] && echo --cold) > "$OUT/gemm_$mode.log" 2>&1
  echo "rc $?"; grep -E "ceiling|^\| 1b|M=|rror" "$OUT/gemm_$mode.log" | cut -c1-200
done
stamp done
