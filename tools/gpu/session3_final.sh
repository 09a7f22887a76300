#!/usr/bin/env bash
# Session 3's validation run on one H200 (carry .gpucuda): the GPU suite after every change of the
# session (layers, fused decode, quantization, NCCL), the backend-neutral suites on CUDA, quantized
# engines end to end (issue 12) and llmrt serve under 256 streaming clients beside bench/throughput.ts
# (issue 13). Logs in $OUT; a summary is printed.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache LLMRT_HF_MODELS=/tmp/hfmodels PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
export LLMRT_NCCL_LIB=${LLMRT_NCCL_LIB:-$(python3 -c "import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], 'lib', 'libnccl.so.2'))" 2>/dev/null)}
# Suites that read ../shared find the staged models there.
mkdir -p ../shared && ln -sfn "$LLMRT_MODELS" ../shared/models
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stages=${*:-hf tests neutral quant serve}
for s in $stages; do
  stamp "$s"
  case $s in
    hf)
      timeout 90 python3 tools/gpu/hf_models.py --hf-reference .gpucuda/hf_reference.py --out /tmp/hfmodels > "$OUT/hfmodels.log" 2>&1; tail -1 "$OUT/hfmodels.log" ;;
    tests)
      timeout 130 bun test --timeout 600000 tests/gpu tests/cuda_launch_plan.test.ts tests/cuda_launch_plan_fused.test.ts tests/quant_cuda_plan.test.ts > "$OUT/gputests.log" 2>&1
      grep -E "^\(fail|greedy ids equal at|^ *[0-9]+ (pass|fail|skip)" "$OUT/gputests.log" | cut -c1-240 | head -20 ;;
    neutral)
      LLMRT_TEST_BACKEND=cuda timeout 100 bun test --timeout 600000 tests/executor_batching.test.ts tests/executor_beam_search.test.ts tests/llm_api.test.ts tests/sampling_features_e2e.test.ts tests/context_logits.test.ts > "$OUT/neutral_cuda.log" 2>&1
      grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)" "$OUT/neutral_cuda.log" | cut -c1-240 | head -12 ;;
    quant)
      timeout 170 bun bench/quant_e2e.ts --model /tmp/hfmodels/llama-3.2-1b --decode 128 > "$OUT/quant_e2e.log" 2>&1; tail -8 "$OUT/quant_e2e.log" | cut -c1-400 ;;
    serve)
      timeout 70 bun bench/throughput.ts --model /tmp/hfmodels/llama-3.2-1b --requests 256 --input 128 --output 128 > "$OUT/throughput256.log" 2>&1; grep -E "llmrt:|model" "$OUT/throughput256.log"
      bun bin/llmrt.ts serve --model /tmp/hfmodels/llama-3.2-1b --backend cuda --max-batch-size 256 --port 8000 --served-model-name llama > "$OUT/serve.log" 2>&1 &
      spid=$!
      for _ in $(seq 1 60); do curl -sf http://127.0.0.1:8000/health >/dev/null && break; sleep 1; done
      timeout 60 bun bench/serve_load.ts --url http://127.0.0.1:8000 --served-model-name llama --concurrency 256 --input-len 128 --min-tokens 128 --max-tokens 128 --duration 30 > "$OUT/serve_load.log" 2>&1; tail -16 "$OUT/serve_load.log"
      kill -TERM $spid; wait $spid; echo "serve exit $?" ;;
  esac
done
stamp done
