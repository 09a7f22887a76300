#!/usr/bin/env bash
# Session 5's Deno run on one H200 (issue 16 item 6; carry .gpudeno, staged by tools/gpu/stage_deno.sh):
# the whole GPU suite in ONE Deno process (session 3's run segfaulted after the NCCL files), with the
# transformers checkpoints cuda_session.test.ts compares against made first; if the one-process run fails,
# each file in its own process and the NCCL file paired with the next one, to find what breaks. Logs in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpudeno/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache LLMRT_HF_MODELS=/tmp/hfmodels PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
LLMRT_NCCL_LIB=${LLMRT_NCCL_LIB:-$(python3 -c "import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], 'lib', 'libnccl.so.2'))" 2>/dev/null)}
export LLMRT_NCCL_LIB
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stamp hf
timeout 150 python3 tools/gpu/hf_models.py --hf-reference .gpudeno/hf_reference.py --out /tmp/hfmodels > "$OUT/hf.log" 2>&1
tail -2 "$OUT/hf.log" | cut -c1-200
stamp "deno test tests/gpu (one process)"
timeout 240 deno test -A --no-check tests/gpu > "$OUT/deno_gpu_all.log" 2>&1
rc=$?
echo "exit $rc"
sed 's/\x1b\[[0-9;]*m//g' "$OUT/deno_gpu_all.log" | grep -E "^(ok|FAILED) \||FAILED|passed|failed|egmentation|SIG|panic" | tail -12 | cut -c1-240
if [ "$rc" != 0 ]; then
  stamp "per file"
  for f in tests/gpu/*.test.ts; do
    timeout 100 deno test -A --no-check "$f" > /tmp/one.log 2>&1
    r=$?
    { echo "===== $f (exit $r)"; cat /tmp/one.log; } >> "$OUT/deno_gpu_per_file.log"
    echo "$f exit $r: $(sed 's/\x1b\[[0-9;]*m//g' /tmp/one.log | grep -E '^(ok|FAILED) \|' | tail -1)"
  done
  stamp "pairs"
  for pair in "tests/gpu/nccl.test.ts tests/gpu/nvrtc_kernels.test.ts" "tests/gpu/tp_master.test.ts tests/gpu/nvrtc_kernels.test.ts"; do
    timeout 100 deno test -A --no-check $pair > /tmp/pair.log 2>&1
    r=$?
    { echo "===== $pair (exit $r)"; cat /tmp/pair.log; } >> "$OUT/deno_gpu_pairs.log"
    echo "$pair exit $r: $(sed 's/\x1b\[[0-9;]*m//g' /tmp/pair.log | grep -E 'egmentation|passed|failed' | tail -2 | tr '\n' ' ')"
  done
fi
stamp done
