#!/usr/bin/env bash
# Session 8 qgemm, round 1 (H200): the tensor-core quantized GEMM of batched decode steps (quant_gemm.cu, issue 12 item 4).
#   1. kernel check + time (decisive): tools/cuda-kernel-check/quant_gemm.py — u4 g128 zp / u4 g64 / u8 per channel / u8 g32 zp
#      at M 9, 16, 33, 64, 128 on llama-3.2-1b and llama-3.1-8b linear shapes vs float64 dequantize-then-matmul; then
#      time vs quant_dequant + torch.matmul (the path it replaces), a bf16 GEMM of the shape, the copy ceiling.
#   2. end to end: llama-3.2-1b 64 x (128,128) W4A16 / W8A16 with LLMRT_QUANT_GEMM=1, and bf16.
#   3. tests/gpu/quant_gemm.test.ts (sessions with and without quantGemm vs the CPU session).
#   4. with what is left: kernel variants (QM_SA_ALL / QM_PIPE / QM_U / QM_U64 / QM_WT / QM_NWN) on llama-3.1-8b shapes.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
M1=/tmp/hfmodels/llama-3.2-1b
stamp "kernel check + time"
timeout 36 python3 tools/cuda-kernel-check/quant_gemm.py --out "$OUT" --budget 28 > "$OUT/kernel.log" 2>&1
echo "rc $?"
grep -E "FAIL|SUMMARY|layer |compile|copy ceiling|Error|error" "$OUT/kernel.log" | head -40
thr() { # NAME LIMIT [ARGS...]
  local name=$1 lim=$2
  shift 2
  stamp "throughput $name"
  LLMRT_BENCH_IDS="$OUT/ids_$name.json" LLMRT_BENCH_JSON="$OUT/t_$name.json" timeout "$lim" bun bench/throughput.ts --model $M1 --requests 64 --input 128 --output 128 "$@" > "$OUT/t_$name.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t_$name.log" | grep -E "llmrt:|Error|error|NaN" | head -4
}
LLMRT_QUANT_GEMM=1 thr w4_qg 16 --quant W4A16
LLMRT_QUANT_GEMM=1 thr w8_qg 16 --quant W8A16
thr bf16 10
python3 - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]
for n in ("w4_qg", "w8_qg", "bf16"):
    try:
        r = json.load(open(f"{o}/t_{n}.json"))
        print(n, f"{r['outputTps']:.1f} output tok/s, {r['seconds']:.3f} s")
    except Exception as e:
        print(n, "no json", e)
PY
rem=$((100 - (SECONDS - t0)))
if [ "$rem" -gt 12 ]; then
  stamp "tests/gpu/quant_gemm.test.ts ($rem s)"
  timeout "$rem" bun test --timeout 600000 tests/gpu/quant_gemm.test.ts > "$OUT/gpu_test.log" 2>&1
  echo "rc $?"
  grep -E "pass|fail|quant_gemm |rror" "$OUT/gpu_test.log" | cut -c1-400 | head -12
fi
rem=$((114 - (SECONDS - t0)))
if [ "$rem" -gt 12 ]; then
  stamp "variants ($rem s)"
  timeout "$rem" python3 tools/cuda-kernel-check/quant_gemm.py --out "$OUT/variants" --only variants --models 8b --time-ms 16,64 --budget $((rem - 4)) \
    --variants ";QM_SA_ALL=1,QM_WT=2,QM_NWN=4;QM_PIPE=0,QM_U64=2;QM_TARGET=264;QM_MT=32;QM_U64=2;QM_SA_ALL=1;QM_WT=2,QM_NWN=4,QM_U=1;QM_U=4" > "$OUT/variants.log" 2>&1
  echo "rc $?"
  grep -E "variant|SUMMARY" "$OUT/variants.log" | head -30
fi
stamp done
