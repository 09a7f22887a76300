#!/usr/bin/env bash
# Issue 16 end-to-end device run, from a checkout root with .gpucuda/ (tools/gpu/stage.sh):
#   bash tools/gpu/issue16_e2e.sh [stages]     stages: hf kernels kcheck tests latency before (default: all)
# hf      — random-weight checkpoints + transformers references (tools/gpu/hf_models.py)
# kernels — tools/cuda-kernel-check/decode_step.py: fused kernels vs float64, the llama-3.2-1b decode step
#           fused vs unfused vs the copy ceiling (DECODE_STEP_ARGS, e.g. --quick)
# kcheck  — check_kernels.py for sampling, gemv, embedding, rmsnorm
# tests   — bun test tests/gpu
# latency — bench/latency.ts on llama-3.2-1b with the gpt-fast-style peer (--peer)
# before  — the same latency run with the previous launch_plan.ts/session.ts/sampling.cu from $LLMRT_OLD_DIR
# Logs under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache LLMRT_HF_MODELS=/tmp/hfmodels PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
for s in ${*:-hf kernels kcheck tests latency before}; do
  stamp "$s"
  case $s in
    hf)
      timeout 170 python3 tools/gpu/hf_models.py --hf-reference .gpucuda/hf_reference.py --out /tmp/hfmodels --presets "${HF_PRESETS:-tiny-llama,tiny-qwen2,qwen3-0.6b,llama-3.2-1b}" 2>&1 | grep -v -i warn > "$OUT/hfmodels.log"
      tail -1 "$OUT/hfmodels.log" ;;
    kernels)
      # shellcheck disable=SC2086
      timeout 90 python3 tools/cuda-kernel-check/decode_step.py --out "$OUT" ${DECODE_STEP_ARGS:-} > "$OUT/decode_step.log" 2>&1
      grep -v "^  ok  " "$OUT/decode_step.log" | grep -v Warning | tail -45 ;;
    kcheck)
      timeout 100 python3 tools/cuda-kernel-check/check_kernels.py --only sampling,gemv,embedding,rmsnorm --no-bench > "$OUT/check_kernels.log" 2>&1
      sed -n '/== SUMMARY/,$p' "$OUT/check_kernels.log" | grep -v "compile " | head -20 ;;
    tests)
      timeout 150 bun test --timeout 600000 tests/gpu > "$OUT/gputests.log" 2>&1
      grep -E "^\(fail|rel L2|greedy ids equal at|error:|^ *[0-9]+ (pass|fail|skip)" "$OUT/gputests.log" | cut -c1-300 | head -40 ;;
    latency)
      timeout 160 bun bench/latency.ts --model /tmp/hfmodels/llama-3.2-1b --prompt-lens 128,2048 --peer 2>&1 | grep -v -i warn | tee "$OUT/latency.log" ;;
    before)
      [ -n "${LLMRT_OLD_DIR:-}" ] || { echo "LLMRT_OLD_DIR unset"; continue; }
      cp "$LLMRT_OLD_DIR"/launch_plan.ts "$LLMRT_OLD_DIR"/session.ts lib/backends/cuda/
      [ -f "$LLMRT_OLD_DIR"/sampling.cu ] && cp "$LLMRT_OLD_DIR"/sampling.cu lib/backends/cuda/kernels/
      timeout 60 bun bench/latency.ts --model /tmp/hfmodels/llama-3.2-1b --prompt-lens 128 2>&1 | grep -v -i warn | tee "$OUT/latency_before.log" ;;
    *) echo "unknown stage $s" ;;
  esac
done
stamp done
