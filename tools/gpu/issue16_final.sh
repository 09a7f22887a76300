#!/usr/bin/env bash
# Issue 16, the session's last device run (short, ~65 s on an H200): checkpoints, decode_step.py --quick
# (fused decode kernels + prefill checks), bun test tests/gpu, bench/latency.ts. Logs in $OUT.
# (The recorded run, tools/gpu/results/s3-issue16/call4_*, also switched the launch plan to the
# paged_attention_prefill_mma2 kernels after their checks passed; they are bitwise equal to _mma.)
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache LLMRT_HF_MODELS=/tmp/hfmodels PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stamp hf
timeout 60 python3 tools/gpu/hf_models.py --hf-reference .gpucuda/hf_reference.py --out /tmp/hfmodels --presets tiny-llama,qwen3-0.6b,llama-3.2-1b > "$OUT/hfmodels.log" 2>&1
stamp kernels
timeout 60 python3 tools/cuda-kernel-check/decode_step.py --out "$OUT" --quick > "$OUT/decode_step.log" 2>&1
grep -v "^  ok  " "$OUT/decode_step.log" | grep -v Warning | tail -32
stamp tests
timeout 40 bun test --timeout 600000 tests/gpu > "$OUT/gputests.log" 2>&1
grep -E "^\(fail|greedy ids equal at|^ *[0-9]+ (pass|fail|skip)" "$OUT/gputests.log" | cut -c1-240 | head -12
stamp latency
timeout 45 bun bench/latency.ts --model /tmp/hfmodels/llama-3.2-1b --prompt-lens 128,2048 --decode 192 2>&1 | grep -v -i warn | tee "$OUT/latency.log"
stamp done
