#!/usr/bin/env bash
# Session 7 closing validation (a job of the batched device queue: tools/gpu/queue_job.sh final tools/gpu/session7_final.sh 200 hfrefs) on one H200 (carry .gpucuda; tools/gpu/stage.sh), most important first:
#   hf       — (in the background) random-weight checkpoints + transformers references (tools/gpu/hf_models.py)
#   firstrun — the README main job with an empty kernel/engine cache, then cached (issue 16 item 5)
#   tests    — tests/gpu (all but cuda_session, nccl_tp2) + tests/quant_cuda.test.ts
#   session  — tests/gpu/cuda_session.test.ts (llmrt vs transformers on 4 architectures; needs hf)
#   latency  — bench/latency.ts --peer on llama-3.2-1b (batch-1 decode vs copy ceiling and the gpt-fast peer, TTFT)
#   thr      — bench/throughput.ts 64 x (128,128) on llama-3.2-1b
# Then, in a second call on the same machine, tools/gpu/(optional) tools/gpu/session5_deno.sh under Deno.
# Logs in $OUT; a summary is printed.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache LLMRT_HF_MODELS=/tmp/hfmodels PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
export LLMRT_NCCL_LIB=${LLMRT_NCCL_LIB:-$(python3 -c "import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], 'lib', 'libnccl.so.2'))" 2>/dev/null)}
mkdir -p ../shared && ln -sfn "$LLMRT_MODELS" ../shared/models
M=/tmp/hfmodels/llama-3.2-1b
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stamp "hf (background)"
(timeout 150 python3 tools/gpu/hf_models.py --hf-reference .gpucuda/hf_reference.py --out /tmp/hfmodels > "$OUT/hf.log" 2>&1
  python3 tools/gpu/synthetic_tokenizer.py "$M" 128256 >> "$OUT/hf.log" 2>&1) &
hpid=$!
stamp firstrun
rm -rf /tmp/s7-firstrun-cache
{ export LLMRT_CACHE_DIR=/tmp/s7-firstrun-cache; s=$(date +%s%N); timeout 40 bun bin/llmrt.ts generate --max-tokens 64 --temperature 0; e=$(date +%s%N)
  echo "empty cache: $(((e - s) / 1000000)) ms"
  s=$(date +%s%N); timeout 40 bun bin/llmrt.ts generate --max-tokens 64 --temperature 0 > /dev/null; e=$(date +%s%N)
  echo "cached: $(((e - s) / 1000000)) ms"; export LLMRT_CACHE_DIR=/tmp/llmrt-cache; } > "$OUT/firstrun.log" 2>&1
tail -4 "$OUT/firstrun.log" | cut -c1-300
stamp tests
gpu_files=$(ls tests/gpu/*.test.ts | grep -v -e cuda_session -e nccl_tp2)
timeout 200 bun test --timeout 600000 $gpu_files tests/quant_cuda.test.ts > "$OUT/gputests.log" 2>&1
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|^Ran " "$OUT/gputests.log" | cut -c1-300 | head -30
stamp "session (waits for hf)"
wait $hpid
grep -E "seconds|FAILED|rror" "$OUT/hf.log" | tail -6 | cut -c1-200
timeout 90 bun test --timeout 600000 tests/gpu/cuda_session.test.ts > "$OUT/session.log" 2>&1
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$" "$OUT/session.log" | cut -c1-300 | head -12
stamp latency
timeout 60 bun bench/latency.ts --model "$M" --peer > "$OUT/latency.log" 2>&1
grep -E "copy|TTFT|decode batch 1|peer|llmrt /" "$OUT/latency.log" | cut -c1-300 | head -12
stamp "thr 64"
timeout 40 bun bench/throughput.ts --model "$M" --requests 64 --input 128 --output 128 > "$OUT/thr64.log" 2>&1
grep -E "llmrt:|rror" "$OUT/thr64.log" | head -4
stamp done
