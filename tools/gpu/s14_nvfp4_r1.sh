#!/usr/bin/env bash
# Session 14, helper nvfp4 (issue 14), round 1 (budget 50 s; llama-3.1-8b). The 8B NVFP4 step's GEMVs run at 40-53% of
# copy alone (session 12). The k32 loop issues ~125 instructions a 576-byte tile (near the SMs' issue rate at copy speed),
# and each item waits on its activation word (an L2 round trip for a row tile's first reader). nvfp4K32X (new, off):
# nvfp4_gemv_k32x*, a lean loop (ring addresses by increments, one barrier a row tile, activation words loaded ahead;
# the same bits).
#   test  — nvfp4_mma.test.ts: k32x forms (plain, w16, act, persistent grids) = the k32 bits
#   e2e8b — llama-3.1-8b, one process: default vs nvfp4K32X (tok/s, logits bitwise?)
#   gemv  — 8B shapes alone in graphs (distinct weights): k32 vs k32x vs k32x unrolled by 2
#   ncu   — Nsight Compute on the 8B k32 / k32x GEMVs: speed of light, memory, warp stall reasons
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "nvfp4_mma.test.ts correctness (k32x forms)"
timeout 9 bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts -t "bf16 ulp|persistent grid" > "$OUT/test.log" 2>&1
echo "rc $?"
grep -E "^\((pass|fail)|rror|^ *[0-9]+ (pass|fail)" "$OUT/test.log" | cut -c1-200 | head -8
stamp "e2e 8B: default vs nvfp4K32X"
timeout 18 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-nvfp4 --skip-bf16 --decode 32 --no-ref \
  --ab nvfp4K32X --ab-reps 1 > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| NVFP4|copy ceiling|nvfp4K32X|rror" "$OUT/e2e8b.log" | cut -c1-260 | head -8
# SASS of the k32 / k32x GEMVs as NVRTC built them here (the loop's instruction count; no disassembler off the device).
CUBINS=$(grep -l -a "nvfp4_gemv_k32" "${LLMRT_CACHE_DIR:-/nonexistent}"/cubin/*nvfp4_mma* 2> /dev/null | head -8)
for fn in nvfp4_gemv_k32_bf16_m1 nvfp4_gemv_k32x_bf16_m1 nvfp4_gemv_k32x_act_bf16_m1; do
  for f in $CUBINS; do
    cuobjdump -sass -fun "$fn" "$f" > "$OUT/sass_$fn.txt" 2>&1 && grep -q "Function" "$OUT/sass_$fn.txt" && break
  done
done
grep -c -E "^ +/\*[0-9a-f]{4}\*/" "$OUT"/sass_*.txt 2> /dev/null
stamp "per GEMV, 8B shapes: k32 vs k32x vs k32x u2"
LLMRT_NVFP4_MODELS=llama-3.1-8b LLMRT_NVFP4_VARIANTS=2p4kb4r6,2p4kb4r6x1,2p4kb4r6x1u2 timeout 12 bun test --timeout 600000 \
  tests/gpu/nvfp4_mma.test.ts -t "device copy" > "$OUT/gemv.log" 2>&1
echo "rc $?"
grep -E "llama-3.1-8b|ceiling|rror" "$OUT/gemv.log" | sed -E 's/lowbit_gemv [^;]*; //' | cut -c1-260 | head -8
left=$((48 - (SECONDS - _t0)))
stamp "ncu 8B GEMVs ($left s)"
[ "$left" -gt 5 ] && timeout "$left" ncu --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section Occupancy --clock-control none \
  --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio" -k regex:nvfp4_gemv \
  bun bench/nvfp4_gemv_profile.ts --reps 1 > "$OUT/ncu.log" 2>&1
echo "rc $?"
python3 tools/gpu/s14_ncu_summary.py "$OUT/ncu.log"
stamp done
