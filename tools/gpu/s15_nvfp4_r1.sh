#!/usr/bin/env bash
# Session 15, helper nvfp4 (issue 14), round 1 (budget 120 s; llama-3.1-8b). Session 14's Nsight: 8B gate_up (k32x) runs
# its SMs 78% of its cycles (1,792 row tiles on 528 blocks, a static order: blocks of 3 or 4 tiles); o_proj's _act form
# (every block quantizes the whole row first) reads DRAM at 17-18%. Two new switches (default off, the same bits):
#   nvfp4K32Dyn    — nvfp4_gemv_k32xd: a block's row tiles past its first two claimed from a counter (SMs done early take more)
#   nvfp4ActLaunch — o_proj: nvfp4_act_mma (one launch) + the plain k32x GEMV instead of nvfp4_gemv_k32x_act
#   test  — nvfp4_mma.test.ts persistent grids: k32xd = k32 bits, launched back to back (the counter's reset)
#   e2e8b — llama-3.1-8b, one process: default / +nvfp4K32Dyn / +nvfp4ActLaunch (tok/s, logits bitwise?)
#   prof  — single launches of the 8B GEMVs: k32x vs k32xd (gate_up is the only persistent grid)
#   ncu   — SM active cycles of gate_up k32x vs k32xd
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "nvfp4_mma.test.ts persistent grids (k32xd)"
timeout 15 bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts -t "persistent grid" > "$OUT/test.log" 2>&1
echo "rc $?"
grep -E "^\((pass|fail)|rror|^ *[0-9]+ (pass|fail)" "$OUT/test.log" | cut -c1-200 | head -8
stamp "e2e 8B: default / +nvfp4K32Dyn / +nvfp4ActLaunch"
timeout 45 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref \
  --ab nvfp4K32Dyn --ab-reps 1 --ab-then nvfp4ActLaunch > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4K32Dyn|nvfp4ActLaunch|rror" "$OUT/e2e8b.log" | cut -c1-300 | head -10
stamp "single launches: k32x vs k32xd"
timeout 12 bun bench/nvfp4_gemv_profile.ts --forms k32x,k32xd --reps 4 > "$OUT/prof.log" 2>&1
echo "rc $?"
grep -E "gate_up|down|rror" "$OUT/prof.log" | cut -c1-160 | head -16
left=$((112 - (SECONDS - _t0)))
stamp "ncu gate_up k32x / k32xd ($left s)"
[ "$left" -gt 8 ] && timeout "$left" ncu --section SpeedOfLight --section SchedulerStats --section Occupancy --clock-control none \
  -k regex:nvfp4_gemv_k32xd?_bf16 --launch-skip 0 bun bench/nvfp4_gemv_profile.ts --forms k32x,k32xd --reps 1 > "$OUT/ncu.log" 2>&1
echo "rc $?"
grep -E "^  nvfp4_gemv|Duration|SM Active Cycles|Elapsed Cycles|DRAM Throughput|Issued Warp|Achieved Active Warps" "$OUT/ncu.log" | cut -c1-120 | head -60
stamp done
