#!/usr/bin/env bash
# Session 4, issue 16 items 5 and 3 (perf helper), one H200 call: the README's main job
# (`bun bin/llmrt.ts generate --max-tokens 64`, embedded kjv-llama, greedy) with an empty kernel and
# engine cache, before (main's tree, copied to $BEFORE by the caller before the overlay) and after,
# then cached; tests/gpu/nvrtc_kernels.test.ts; llama-3.2-1b 64 × (128, 128) with --profile-host.
# Logs in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
BEFORE=${BEFORE:-}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
echo "cpus $(nproc)"
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
# Runs a command on a pseudo-terminal when `script` exists (llmrt prints its compile line on a TTY).
tty() { if command -v script > /dev/null; then script -qec "$*" /dev/null; else bash -c "$*"; fi; }
# first-run DIR LABEL: empty cache, then the same command cached.
first_run() {
  (
    cd "$1" || exit 1
    # shellcheck disable=SC1091
    source .gpucuda/boot.sh > /dev/null
    export LLMRT_CACHE_DIR=/tmp/cache-$2
    rm -rf "$LLMRT_CACHE_DIR"
    for run in empty cached; do
      s=$EPOCHREALTIME
      timeout 90 bash -c "$(declare -f tty); tty bun bin/llmrt.ts generate --max-tokens 64 --temperature 0" < /dev/null > "$OUT/first_$2_$run.log" 2>&1
      e=$EPOCHREALTIME
      echo "$2 $run cache: $(python3 -c "print(f'{$e - $s:.2f}')") s wall; $(grep -a -E 'llmrt: kernels|\[llmrt\]' "$OUT/first_$2_$run.log" | tr -d '\r' | tr '\n' ' ')"
    done
  )
}
stages=${*:-first nvrtc model throughput}
for st in $stages; do
case $st in
first)
stamp first-run
[ -n "$BEFORE" ] && first_run "$BEFORE" before
first_run . after
if [ -n "$BEFORE" ]; then
  cmp <(grep -av 'Processed prompts\|^\[llmrt\]\|llmrt: ' "$OUT/first_before_empty.log" | tr -d '\r') <(grep -av 'Processed prompts\|^\[llmrt\]\|llmrt: ' "$OUT/first_after_empty.log" | tr -d '\r') &&
    echo "generated text identical before/after"
fi
;;
nvrtc)
stamp nvrtc-test
LLMRT_CACHE_DIR=/tmp/cache-after timeout 60 bun test tests/gpu/nvrtc_kernels.test.ts > "$OUT/nvrtc_test.log" 2>&1
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)" "$OUT/nvrtc_test.log"
;;
model)
stamp make-model
[ -e /tmp/hfmodels/llama-3.2-1b/config.json ] || timeout 80 python3 .gpucuda/hf_reference.py make-model --preset llama-3.2-1b --out /tmp/hfmodels/llama-3.2-1b > "$OUT/make_model.log" 2>&1 || tail -3 "$OUT/make_model.log"
;;
throughput)
stamp throughput
export LLMRT_CACHE_DIR=/tmp/cache-after
timeout 120 bash -c "$(declare -f tty); tty bun bench/throughput.ts --model /tmp/hfmodels/llama-3.2-1b --requests 64 --input 128 --output 128 --profile-host" < /dev/null > "$OUT/throughput64.log" 2>&1
tr -d '\r' < "$OUT/throughput64.log" | grep -v -i warn | head -70
;;
kcheck)
stamp kernel-checks
timeout 120 python3 tools/cuda-kernel-check/decode_step.py --out "$OUT" --quick > "$OUT/decode_step.log" 2>&1
grep -v "^  ok  " "$OUT/decode_step.log" | grep -v Warning | tail -30
;;
tune32)
# Experiment: cuBLASLt tuning over 32 heuristic candidates instead of 8 (fresh timing cache), same bench.
stamp tune32
sed -i 's/^const TUNE_CANDIDATES = 8;/const TUNE_CANDIDATES = 32;/' lib/backends/cuda/gemm.ts && grep -n "^const TUNE_CANDIDATES" lib/backends/cuda/gemm.ts
export LLMRT_CACHE_DIR=/tmp/cache-tune32
timeout 120 bun bench/throughput.ts --model /tmp/hfmodels/llama-3.2-1b --requests 64 --input 128 --output 128 --profile-host > "$OUT/throughput64_tune32.log" 2>&1
grep -v -i warn "$OUT/throughput64_tune32.log" | grep -E "llmrt:|gemm|\| [0-9.]+ ms" | head -20
git checkout lib/backends/cuda/gemm.ts 2> /dev/null || sed -i 's/^const TUNE_CANDIDATES = 32;/const TUNE_CANDIDATES = 8;/' lib/backends/cuda/gemm.ts
;;
esac
done
stamp done
