#!/usr/bin/env bash
# Session 15, helper nvfp4 (issue 14), round 1 (budget 120 s; llama-3.1-8b). Session 14's Nsight: 8B gate_up (k32x) runs
# its SMs 78% of its cycles (1,792 row tiles on 528 blocks, a static order: blocks of 3 or 4 tiles); o_proj's _act form
# (every block quantizes the whole row first) reads DRAM at 17-18%; the k32x loop issues ~139 instructions a 576-byte tile.
# New (default off, the same bits):
#   nvfp4K32Dyn    — nvfp4_gemv_k32xd: a block's row tiles past its first two claimed from a counter (SMs done early take more)
#   nvfp4ActLaunch — o_proj: nvfp4_act_mma (one launch) + the plain k32x GEMV instead of nvfp4_gemv_k32x_act
#   nvfp4AttnAct   — decode_attention_sk_q4 writes o_proj's NVFP4 codes itself (no act launch / prologue)
#   knobs NV_K32X_SHF3 (h: 6 shuffles an item, not 8), NV_K32X_ZC (z: mma chains from zero accumulators)
# Steps: tests (k32xd = k32 bits incl. back-to-back launches; nvfp4AttnAct logits = default bits); e2e8b (one process:
# default / +Dyn / +Dyn+ActLaunch / +Dyn+AttnAct; tok/s, logits bitwise?); gemv (8B shapes alone: k32x vs h / z / hz);
# sass (cuobjdump of a locally built cubin: the loop's instructions, for r2); prof (gate_up single launches k32x / k32xd).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "GPU tests: persistent grids (k32xd), nvfp4AttnAct bits"
timeout 12 bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts -t "persistent grid" > "$OUT/test.log" 2>&1
echo "rc $?"
grep -E "^\((pass|fail)|rror|^ *[0-9]+ (pass|fail)" "$OUT/test.log" | cut -c1-200 | head -4
timeout 20 bun test --timeout 600000 tests/gpu/nvfp4_attn_act.test.ts > "$OUT/test_attn.log" 2>&1
echo "rc $?"
grep -E "^\((pass|fail)|rror|bitwise|^ *[0-9]+ (pass|fail)" "$OUT/test_attn.log" | cut -c1-200 | head -4
stamp "e2e 8B: default / +nvfp4K32Dyn / +nvfp4ActLaunch / +nvfp4AttnAct"
timeout 52 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref \
  --ab nvfp4K32Dyn --ab-reps 1 --ab-then nvfp4ActLaunch,nvfp4AttnAct > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4K32Dyn|nvfp4ActLaunch|nvfp4AttnAct|rror" "$OUT/e2e8b.log" | cut -c1-300 | head -10
stamp "per GEMV, 8B shapes: k32x / h / z / hz"
LLMRT_NVFP4_MODELS=llama-3.1-8b LLMRT_NVFP4_VARIANTS=2p4kb4r6x1,2p4kb4r6x1h,2p4kb4r6x1z,2p4kb4r6x1hz timeout 14 bun test --timeout 600000 \
  tests/gpu/nvfp4_mma.test.ts -t "device copy" > "$OUT/gemv.log" 2>&1
echo "rc $?"
grep -E "llama-3.1-8b|ceiling|rror" "$OUT/gemv.log" | sed -E 's/lowbit_gemv [^;]*; //; s/mma 2p4kb4r6/v/g' | cut -c1-300 | head -8
stamp "sass"
for x in tools/gpu/s15_nvfp4_*.cubin.xz; do
  c=/tmp/$(basename "$x" .xz)
  xz -dc "$x" > "$c"
  (cuobjdump -sass "$c" 2> /dev/null || nvdisasm -c "$c") > "$OUT/sass_$(basename "$c" .cubin).txt" 2>&1
done
wc -l "$OUT"/sass_*.txt | head -3
left=$((116 - (SECONDS - _t0)))
stamp "single launches: k32x vs k32xd ($left s)"
[ "$left" -gt 6 ] && timeout "$left" bun bench/nvfp4_gemv_profile.ts --forms k32x,k32xd --reps 4 > "$OUT/prof.log" 2>&1
echo "rc $?"
grep -E "gate_up|rror" "$OUT/prof.log" | cut -c1-160 | head -8
stamp done
