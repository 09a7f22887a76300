#!/usr/bin/env bash
# Session 3's Deno run on one H200 (carry .gpudeno, staged by tools/gpu/stage_deno.sh): the GPU suite
# under Deno (issue 16 part 6), quantized engines' decode-step logits (issue 12) and llmrt serve
# under 256 streaming clients beside bench/throughput.ts in the same run (issue 13). Logs in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpudeno/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache LLMRT_HF_MODELS=/tmp/hfmodels PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
export LLMRT_NCCL_LIB=${LLMRT_NCCL_LIB:-$(python3 -c "import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], 'lib', 'libnccl.so.2'))" 2>/dev/null)}
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stages=${*:-hf tests quant serve}
presets=${PRESETS:-tiny-llama,tiny-qwen2,qwen3-0.6b,llama-3.2-1b}
for s in $stages; do
  stamp "$s"
  case $s in
    hf)
      timeout 90 python3 tools/gpu/hf_models.py --hf-reference .gpudeno/hf_reference.py --out /tmp/hfmodels --presets "$presets" > "$OUT/hfmodels.log" 2>&1; tail -1 "$OUT/hfmodels.log" ;;
    tests1)
      # One Deno process per test file (the whole-directory run segfaulted after the NCCL files).
      for f in tests/gpu/*.test.ts; do
        timeout 100 deno test -A --no-check "$f" > /tmp/one.log 2>&1; rc=$?
        { echo "===== $f (exit $rc)"; cat /tmp/one.log; } >> "$OUT/gputests_deno_per_file.log"
        echo "$f exit $rc: $(sed 's/\x1b\[[0-9;]*m//g' /tmp/one.log | grep -E '^(ok|FAILED) \|' | tail -1)"
      done ;;
    tests)
      timeout 130 deno test -A --no-check tests/gpu > "$OUT/gputests_deno.log" 2>&1
      grep -E "FAILED|greedy ids equal at|passed|failed" "$OUT/gputests_deno.log" | cut -c1-240 | tail -14 ;;
    quant)
      timeout 130 deno run -A bench/quant_e2e.ts --model /tmp/hfmodels/llama-3.2-1b --decode 128 > "$OUT/quant_e2e_deno.log" 2>&1; tail -6 "$OUT/quant_e2e_deno.log" | cut -c1-500 ;;
    serve)
      timeout 70 deno run -A bench/throughput.ts --model /tmp/hfmodels/llama-3.2-1b --requests 256 --input 128 --output 128 > "$OUT/throughput256_deno.log" 2>&1; grep -E "llmrt:|model|rror" "$OUT/throughput256_deno.log" | head -5
      python3 tools/gpu/synthetic_tokenizer.py /tmp/hfmodels/llama-3.2-1b 128256
      deno run -A bin/llmrt.ts serve --model /tmp/hfmodels/llama-3.2-1b --backend cuda --max-batch-size 256 --port 8000 --served-model-name llama > "$OUT/serve_deno.log" 2>&1 &
      spid=$!
      for _ in $(seq 1 60); do curl -sf http://127.0.0.1:8000/health >/dev/null && break; sleep 1; done
      timeout 60 deno run -A bench/serve_load.ts --url http://127.0.0.1:8000 --served-model-name llama --concurrency 256 --input-len 128 --min-tokens 128 --max-tokens 128 --duration 30 > "$OUT/serve_load_deno.log" 2>&1; tail -16 "$OUT/serve_load_deno.log"
      kill -TERM $spid; wait $spid; echo "serve exit $?"; tail -3 "$OUT/serve_deno.log" ;;
  esac
done
stamp done
