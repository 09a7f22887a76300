#!/usr/bin/env bash
# Session 15, helper nvfp4 (issue 14), round 2 (the last; budget 90 s; llama-3.1-8b, llama-3.2-1b). r1 (8B, one process):
# default 354.1 tok/s; nvfp4K32Dyn 348.2 (removed); + nvfp4ActLaunch 363.8 (o_proj: nvfp4_act_mma + the plain k32x GEMV
# instead of every block quantizing the row); + nvfp4AttnAct 363.3 (the attention writes o_proj's codes); logits bitwise
# equal throughout. Per GEMV the knobs SHF3 / ZC: +0.5%. Now, for the default flip of nvfp4ActLaunch:
#   e2e8b — llama-3.1-8b, one process: default / +nvfp4ActLaunch / +nvfp4AttnAct / +nvfp4K32Lean (k32y: SHF3 + ZC + PHASE,
#           activation words 2 items ahead)
#   e2e1b — llama-3.2-1b, one process: default / +nvfp4ActLaunch
#   tests — k32y = mma bits (persistent grids, act forms); nvfp4AttnAct logits = default bits (one split and several)
#   gemv  — 8B shapes alone, if time is left: k32x / +hof (SHF3 ZC PHASE) / x2 / x2hof
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e 8B: default / +nvfp4ActLaunch / +nvfp4AttnAct / +nvfp4K32Lean"
timeout 46 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref \
  --ab nvfp4ActLaunch --ab-reps 1 --ab-then nvfp4AttnAct,nvfp4K32Lean > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4ActLaunch|rror" "$OUT/e2e8b.log" | cut -c1-300 | head -8
stamp "e2e 1B: default / +nvfp4ActLaunch"
timeout 14 bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 64 --no-ref \
  --ab nvfp4ActLaunch --ab-reps 1 > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4ActLaunch|rror" "$OUT/e2e1b.log" | cut -c1-300 | head -6
stamp "GPU tests: k32y bits, nvfp4AttnAct logits"
timeout 10 bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts -t "persistent grid|bf16 ulp" > "$OUT/test.log" 2>&1
echo "rc $?"
grep -E "^\((pass|fail)|rror|^ *[0-9]+ (pass|fail)" "$OUT/test.log" | cut -c1-200 | head -6
timeout 9 bun test --timeout 600000 tests/gpu/nvfp4_attn_act.test.ts > "$OUT/test_attn.log" 2>&1
echo "rc $?"
grep -E "^\((pass|fail)|rror|bitwise|^ *[0-9]+ (pass|fail)" "$OUT/test_attn.log" | cut -c1-200 | head -4
left=$((86 - (SECONDS - _t0)))
stamp "per GEMV, 8B shapes: k32x / hof / x2 / x2hof ($left s)"
[ "$left" -gt 6 ] && LLMRT_NVFP4_MODELS=llama-3.1-8b LLMRT_NVFP4_VARIANTS=2p4kb4r6x1,2p4kb4r6x1hof,2p4kb4r6x2,2p4kb4r6x2hof timeout "$left" \
  bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts -t "device copy" > "$OUT/gemv.log" 2>&1
echo "rc $?"
grep -E "llama-3.1-8b|ceiling|rror" "$OUT/gemv.log" | sed -E 's/lowbit_gemv [^;]*; //; s/mma 2p4kb4r6/v/g' | cut -c1-300 | head -8
stamp done
