#!/usr/bin/env bash
# Session 7, issue 12 (quant helper), one batched-queue job (tools/gpu/queue_job.sh quant ...):
#   pack1b  : llama-3.2-1b -> AWQ GEMM g128 and GPTQ 8-bit per-channel checkpoints (tools/quant-packers/pack_awq_torch.py,
#             torch on the GPU, RTN), each checked by tools/quant-packers/check_prequantized.ts (llmrt's dequantization
#             == the packer's, bitwise; load time)
#   e2e1b   : bench/quant_e2e.ts on llama-3.2-1b: bf16 vs the two checkpoints, quantPdl off/on/off/on (bitwise + tok/s),
#             the dequantized-bf16 reference engine
#   pack8b  : the same packer on llama-3.1-8b (AWQ; GPTQ8 with PACK8B_GPTQ=1) + the check (load time of 8B)
#   e2e8b   : bench/quant_e2e.ts on llama-3.1-8b: bf16 vs the 8B checkpoints, quantPdl off/on, no reference engine
#   tests   : tests/quant_cuda.test.ts (the GEMV kernels vs float64 on the GPU)
#   tune    : bench/quant_gemv_tune.ts (VARIANTS: the ring kernels vs quant_gemv_fused, bitwise + per-linear timing)
#   tput1b / tput8b : bench/throughput.ts 64 x (128,128), bf16 and the AWQ checkpoint (QUANT_PDL=1 sets LLMRT_QUANT_PDL)
# Usage: STAGES="pack1b e2e1b pack8b e2e8b" bash tools/gpu/quant_s7.sh
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
H=/tmp/hfmodels
P=tools/quant-packers
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
pack() { # SRC DST FORMAT TAG
  [ -f "$2/config.json" ] && return 0
  timeout "${PACK_S:-90}" python3 $P/pack_awq_torch.py --model "$1" --out "$2" --format "$3" --check "$2.check.safetensors" > "$OUT/pack_$4.log" 2>&1
  echo "pack $4 rc $?: $(tail -1 "$OUT/pack_$4.log" | cut -c1-400)"
  timeout "${CHECK_S:-60}" bun $P/check_prequantized.ts --model "$2" --check "$2.check.safetensors" > "$OUT/check_$4.log" 2>&1
  echo "check $4 rc $?"
  grep -E "OK|FAIL|differ|equal|loaded|rror" "$OUT/check_$4.log" | cut -c1-300 | head -8
}
packboth() { # SRC TAG: AWQ g128 and GPTQ 8-bit per channel from one read of SRC, then each checked
  if [ ! -f "$1-awq/config.json" ] || [ ! -f "$1-gptq8/config.json" ]; then
    timeout "${PACK_S:-90}" python3 $P/pack_awq_torch.py --model "$1" --out "$1-awq,$1-gptq8" --format awq,gptq8 \
      --check "$1-awq.check.safetensors,$1-gptq8.check.safetensors" > "$OUT/pack_$2.log" 2>&1
    echo "pack $2 rc $?: $(tail -1 "$OUT/pack_$2.log" | cut -c1-400)"
  fi
  for f in awq gptq8; do
    [ -f "$1-$f/config.json" ] && [ -z "${NOCHECK:-}" ] || continue
    timeout "${CHECK_S:-60}" bun $P/check_prequantized.ts --model "$1-$f" --check "$1-$f.check.safetensors" > "$OUT/check_$2_$f.log" 2>&1
    echo "check $2 $f rc $?"
    grep -E "OK|FAIL|differ|equal|loaded|rror" "$OUT/check_$2_$f.log" | cut -c1-300 | head -8
  done
}
for s in ${STAGES:-pack1b e2e1b pack8b e2e8b}; do
  stamp "$s"
  case $s in
    packboth1b) packboth $H/llama-3.2-1b 1b ;;
    packboth8b) PACK_S=${PACK8B_S:-120} NOCHECK=${NOCHECK8B:-} packboth $H/llama-3.1-8b 8b; df -h /tmp | tail -1 ;;
    pack1b)
      pack $H/llama-3.2-1b $H/llama-3.2-1b-awq awq awq1b
      [ "${PACK1B_GPTQ:-1}" = 1 ] && pack $H/llama-3.2-1b $H/llama-3.2-1b-gptq8 gptq8 gptq8_1b ;;
    e2e1b)
      pre=""; algos=${ALGOS1B:-}
      for d in $H/llama-3.2-1b-awq $H/llama-3.2-1b-gptq8; do [ -f $d/config.json ] && pre=$pre${pre:+,}$d; done
      [ -n "$pre" ] || algos=W4A16,W8A16  # no packed checkpoint: llmrt's own RTN quantization
      timeout "${E2E1B_S:-90}" bun bench/quant_e2e.ts --model $H/llama-3.2-1b --decode 128 --algos "$algos" --prequantized "$pre" --ab ${AB:-quantPdl} --ab-reps ${ABREPS:-2} ${NOREF1B:-} > "$OUT/e2e1b.log" 2>&1
      echo "rc $?"
      grep -E "^\||copy|rror|OK|MISMATCH|vs a bf16" "$OUT/e2e1b.log" | cut -c1-900 | head -16 ;;
    pack8b)
      PACK_S=${PACK8B_S:-100} pack $H/llama-3.1-8b $H/llama-3.1-8b-awq awq awq8b
      [ "${PACK8B_GPTQ:-0}" = 1 ] && PACK_S=${PACK8B_S:-100} pack $H/llama-3.1-8b $H/llama-3.1-8b-gptq8 gptq8 gptq8_8b
      df -h /tmp | tail -1 ;;
    e2e8b)
      pre=""
      for d in $H/llama-3.1-8b-awq $H/llama-3.1-8b-gptq8; do [ -f $d/config.json ] && pre=$pre${pre:+,}$d; done
      [ -n "$pre" ] || { echo "no 8B checkpoint packed"; continue; }
      timeout "${E2E8B_S:-120}" bun bench/quant_e2e.ts --model $H/llama-3.1-8b --decode 128 --algos "" --prequantized $pre --ab ${AB:-quantPdl} --ab-reps ${ABREPS:-2} --no-ref > "$OUT/e2e8b.log" 2>&1
      echo "rc $?"
      grep -E "^\||copy|rror|OK|MISMATCH" "$OUT/e2e8b.log" | cut -c1-900 | head -12 ;;
    tests)
      timeout "${TESTS_S:-30}" bun test --timeout 600000 tests/quant_cuda.test.ts > "$OUT/quant_cuda.log" 2>&1
      echo "rc $?"
      grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)|all decoder|rror" "$OUT/quant_cuda.log" | cut -c1-300 | head -20 ;;
    tune)
      timeout "${TUNE_S:-60}" bun bench/quant_gemv_tune.ts --variants "${VARIANTS:-MINB=3;RING;RING,RB=2}" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
      echo "rc $?"
      grep -E "same bits|close|DIFFERENT|rror|ceiling|lm_head|m=1 fused|m=1 " "$OUT/tune.log" | cut -c1-330 | head -60 ;;
    tput1b | tput8b)
      m=$H/llama-3.2-1b; [ $s = tput8b ] && m=$H/llama-3.1-8b
      for dir in $m $m-awq ${TPUT_GPTQ8:+$m-gptq8}; do
        [ -f $dir/config.json ] || continue
        tag=$(basename $dir)
        env ${QUANT_PDL:+LLMRT_QUANT_PDL=$QUANT_PDL} ${QUANT_RING:+LLMRT_QUANT_RING=$QUANT_RING} LLMRT_BENCH_JSON="$OUT/tput_$tag.json" timeout "${TPUT_S:-60}" bun bench/throughput.ts --model $dir --requests 64 --input 128 --output 128 > "$OUT/tput_$tag.log" 2>&1
        echo "$tag rc $?: $(grep -E "llmrt:|rror" "$OUT/tput_$tag.log" | tail -2 | cut -c1-300 | tr '\n' ' ')"
      done ;;
  esac
done
stamp done
