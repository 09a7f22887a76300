#!/usr/bin/env bash
# Session 4's closing validation on one H200 (carry .gpucuda; tools/gpu/stage.sh): everything merged this session
# in one call, most important first (the device budget could end the call early):
#   hf       — (in the background) random-weight checkpoints + transformers references (tools/gpu/hf_models.py);
#              llama-3.2-1b gets the word-level synthetic tokenizer (as session4_serve.sh uses) and a twin folder
#              /tmp/llama-1b-bytes (same weights, linked) the byte-level one (JSON punctuation for the guided bench)
#   firstrun — the README main job with an empty kernel/engine cache, then cached (issue 16 item 5)
#   tests    — tests/gpu (all but cuda_session, nccl_tp2) + tests/quant_cuda.test.ts: the session's CUDA code
#   session  — tests/gpu/cuda_session.test.ts (llmrt vs transformers on 4 architectures; needs hf)
#   serve    — tools/gpu/session4_serve.sh: offline bench/throughput.ts vs llmrt serve, 256 streams (issue 13)
#   guided   — bench/guided_decoding.ts --e2e at batch 1 and 64 (issue 15)
# Logs in $OUT (at most 8 files come back); a summary is printed.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache LLMRT_HF_MODELS=/tmp/hfmodels PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
export LLMRT_NCCL_LIB=${LLMRT_NCCL_LIB:-$(python3 -c "import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], 'lib', 'libnccl.so.2'))" 2>/dev/null)}
mkdir -p ../shared && ln -sfn "$LLMRT_MODELS" ../shared/models
M=/tmp/hfmodels/llama-3.2-1b MB=/tmp/llama-1b-bytes
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stamp "hf (background)"
(timeout 150 python3 tools/gpu/hf_models.py --hf-reference .gpucuda/hf_reference.py --out /tmp/hfmodels > "$OUT/hf.log" 2>&1
  python3 tools/gpu/synthetic_tokenizer.py "$M" 128256 >> "$OUT/hf.log" 2>&1
  mkdir -p "$MB" && for f in "$M"/config.json "$M"/generation_config.json "$M"/*.safetensors*; do [ -e "$f" ] && ln -sf "$f" "$MB/"; done; python3 tools/gpu/synthetic_tokenizer.py "$MB" 128256 --bytes >> "$OUT/hf.log" 2>&1) &
hpid=$!
stamp firstrun
{ s=$(date +%s%N); timeout 40 bun bin/llmrt.ts generate --max-tokens 64 --temperature 0; e=$(date +%s%N)
  echo "empty cache: $(((e - s) / 1000000)) ms"
  s=$(date +%s%N); timeout 40 bun bin/llmrt.ts generate --max-tokens 64 --temperature 0 > /dev/null; e=$(date +%s%N)
  echo "cached: $(((e - s) / 1000000)) ms"; } > "$OUT/firstrun.log" 2>&1
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
stamp serve
OUT=/tmp/serve-out DUR=10 timeout 120 bash tools/gpu/session4_serve.sh > "$OUT/serve.log" 2>&1
cp /tmp/serve-out/load_auto.log "$OUT/" 2> /dev/null
grep -vE "^\s*$" "$OUT/serve.log" | tail -30 | cut -c1-300
stamp guided
timeout 80 bun bench/guided_decoding.ts --e2e --e2e-only --model "$MB" --backend cuda --batch 1,64 --new 128 > "$OUT/guided.log" 2>&1
tail -14 "$OUT/guided.log" | cut -c1-300
stamp done
