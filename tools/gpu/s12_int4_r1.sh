#!/usr/bin/env bash
# Session 12 (issue 12), helper int4, round 1 (45 s): the same-job end-to-end table that sessions 10–11 never got.
#   e2e8b — bench/quant_e2e.ts on llama-3.1-8b: bf16 engine, then W4A16_AWQ g128 + zero points (--synthetic-w4: random
#           codes in the layout openModel gives an AWQ checkpoint: the same kernels and bytes, built in seconds instead
#           of the ~9 s pack + 11 s load), quantGemvFast off/on; batch 1, prompt 128, 128 graph steps; --profile-decode
#           = the step by role (µs, % of copy) for each engine; then quantGemvFast + quantGemvF16 (new: f16 dequantization,
#           x staged as f16: quant_gemv_h*, emulated on the CPU: the same bits as quant_gemv_fast)
#   e2e1b — the same on llama-3.2-1b with W8A16 per channel (--synthetic-w8) too
#   sass  — cuobjdump -sass of quant_gemv_fused_rs_u4 / _addnorm_u4 (nvcc sm_90): where the ~211 instructions a
#           superchunk (s11 Nsight) go
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "sass"
( cd lib/backends/cuda/kernels && timeout 8 nvcc -cubin -arch=sm_90 -std=c++17 -I. -DLLMRT_SELECT -DLLMRT_K_quant_gemv_fused_rs_u4=1 \
  -DLLMRT_K_quant_gemv_fused_addnorm_u4=1 -DLLMRT_K_quant_gemv_h_rs_u4=1 -DLLMRT_K_quant_gemv_fast_rs_u4=1 quant_gemv.cu -o /tmp/qg.cubin && cuobjdump -sass /tmp/qg.cubin > "$OUT/qg.sass" ) 2>&1 | tail -3
wc -l "$OUT/qg.sass" 2> /dev/null
stamp "e2e 8B: bf16 vs W4A16_AWQ g128 (synthetic), quantGemvFast off/on, then + quantGemvF16"
timeout 34 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-w4 --no-ref --profile-decode --ab quantGemvFast --ab-reps 1 \
  --ab-then quantGemvF16 > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\||^  (decode|linears|  )|copy ceiling|quantGemvFast|rror" "$OUT/e2e8b.log" | cut -c1-400 | head -40
left=$((43 - (SECONDS - _t0)))
[ "$left" -gt 4 ] || { stamp "no time left"; exit 0; }
stamp "e2e 1B: bf16 vs W4A16_AWQ g128 / W8A16 (synthetic), quantGemvFast off/on ($left s)"
timeout "$left" bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-w4 --synthetic-w8 --no-ref --profile-decode --ab quantGemvFast --ab-reps 1 > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\||^  (decode|linears|  )|quantGemvFast|rror" "$OUT/e2e1b.log" | cut -c1-400 | head -40
stamp done
