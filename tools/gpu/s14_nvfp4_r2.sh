#!/usr/bin/env bash
# Session 14, helper nvfp4 (issue 14), round 2 (the last; budget 50 s; llama-3.1-8b, llama-3.2-1b). r1: nvfp4_gemv_k32x
# (nvfp4K32X: the lean k32 loop, same bits — GPU test pass) per GEMV on 8B shapes: decoder linears a token 2.126 -> 1.817 ms
# (43.3% -> 50.6% of copy; gate_up 32.4 -> 26.8 us, down 18.8 -> 15.2); ncu: long-scoreboard stalls lead in qkv / down.
# Its e2e A/B was cut by the step's limit. Now:
#   e2e8b — llama-3.1-8b, one process: default vs nvfp4K32X (tok/s, logits bitwise?) — the A/B for the default flip
#   gemv  — 8B shapes alone: k32, k32x, k32x with 576-byte slots in a 10-deep ring, the contiguous-run probe (wrong sums)
#   e2e1b — llama-3.2-1b, one process: default vs nvfp4K32X
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e 8B: default vs nvfp4K32X"
timeout 26 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref \
  --ab nvfp4K32X --ab-reps 1 > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4K32X|rror" "$OUT/e2e8b.log" | cut -c1-300 | head -8
stamp "per GEMV, 8B shapes: k32 / k32x / k32x slim ring 10 / contiguous-run probe"
LLMRT_NVFP4_MODELS=llama-3.1-8b LLMRT_NVFP4_VARIANTS=2p4kb4r6,2p4kb4r6x1,2p4kb4r6x1s10,2p4kb4r6x1c timeout 12 bun test --timeout 600000 \
  tests/gpu/nvfp4_mma.test.ts -t "device copy" > "$OUT/gemv.log" 2>&1
echo "rc $?"
grep -E "llama-3.1-8b|ceiling|rror" "$OUT/gemv.log" | sed -E 's/lowbit_gemv [^;]*; //; s/mma 2p4kb4r6/v/g' | cut -c1-300 | head -8
left=$((48 - (SECONDS - _t0)))
stamp "e2e 1B: default vs nvfp4K32X ($left s)"
[ "$left" -gt 3 ] && timeout "$left" bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 64 --no-ref \
  --ab nvfp4K32X --ab-reps 1 > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4K32X|rror" "$OUT/e2e1b.log" | cut -c1-300 | head -6
stamp done
