#!/usr/bin/env bash
# The one command of a device run (issue 5): on the GPU host, from the checkout root, with
# .gpucuda/ carried (tools/gpu/stage.sh):
#   bash tools/gpu/run.sh [stage ...]      stages: kernels hf tests throughput cli latency (default: all)
# kernels   — tools/cuda-kernel-check for the new head dims (8/16/32/40/256: tiled hd32 + generic) and gemv, background
# hf        — random-weight checkpoints + transformers float32 references (tools/gpu/hf_models.py)
# tests     — bun test tests/gpu (incl. cuda_session.test.ts) + the launch-plan test
# throughput, latency — bench/*.ts on llama-3.2-1b with transformers side by side; cli — the README main job
# Logs go to $OUT (one file per stage); a summary is printed last. Each stage has its own time limit.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache LLMRT_HF_MODELS=/tmp/hfmodels PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stages=${*:-kernels hf tests throughput cli latency}
kpid=""
for s in $stages; do
  stamp "$s"
  case $s in
    kernels)
      timeout 240 python3 tools/cuda-kernel-check/check_kernels.py --only "${KCHECK_ONLY:-attention_decode,attention_prefill,attention_generic,gemv}" \
        --head-dims 8,16,32,40,256 --no-bench > "$OUT/kernels.log" 2>&1 &
      kpid=$! ;;
    hf)
      timeout 200 python3 tools/gpu/hf_models.py --hf-reference .gpucuda/hf_reference.py --out /tmp/hfmodels 2>&1 | grep -v -i warn | tee "$OUT/hfmodels.log" ;;
    tests)
      timeout 200 bun test --timeout 600000 tests/gpu tests/cuda_launch_plan.test.ts > "$OUT/gputests.log" 2>&1
      grep -E "^\(pass|^\(fail|^\(skip|rel L2|stories260k f32|greedy ids|batch vs|error:|Error|^ *[0-9]+ (pass|fail|skip)" "$OUT/gputests.log" | cut -c1-400 ;;
    throughput)
      timeout 260 bun bench/throughput.ts --model /tmp/hfmodels/llama-3.2-1b --hf --hf-compile 2>&1 | grep -v -i warn | tee "$OUT/throughput.log" ;;
    cli)
      timeout 90 bun bin/llmrt.ts generate --max-tokens 64 2>&1 | tee "$OUT/cli.log" ;;
    latency)
      # A/B first: the same llmrt decode with every linear on cuBLASLt (LLMRT_GEMV=0), then the real run.
      LLMRT_GEMV=0 timeout 60 bun bench/latency.ts --model /tmp/hfmodels/llama-3.2-1b --prompt-lens 128 2>&1 | grep -E "decode|ceiling|TTFT|gemm" | tee "$OUT/latency_cublaslt.log"
      timeout 330 bun bench/latency.ts --model /tmp/hfmodels/llama-3.2-1b --hf --hf-compile 2>&1 | grep -v -i warn | tee "$OUT/latency.log" ;;
    *) echo "unknown stage $s" ;;
  esac
done
if [ -n "$kpid" ]; then
  wait "$kpid"
  stamp "kernel checks (log: kernels.log)"
  sed -n '/== SUMMARY/,$p' "$OUT/kernels.log" | grep -v "compile " | tail -20
fi
stamp "done"
