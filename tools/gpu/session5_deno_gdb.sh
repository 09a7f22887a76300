#!/usr/bin/env bash
# Where Deno segfaults after the NCCL rank-worker tests (issue 16 item 6): the pair nccl + nvrtc_kernels under
# cuda-gdb (no gdb on the device; cuda-gdb debugs host code too), every thread's backtrace at the fault.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpudeno/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache NO_COLOR=1
LLMRT_NCCL_LIB=${LLMRT_NCCL_LIB:-$(python3 -c "import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], 'lib', 'libnccl.so.2'))" 2>/dev/null)}
export LLMRT_NCCL_LIB
which cuda-gdb || ls /usr/local/cuda/bin | head
timeout 200 cuda-gdb -batch -ex "set pagination off" -ex "handle SIGUSR1 SIGUSR2 SIGPIPE SIG34 SIG35 SIG36 nostop noprint" -ex run -ex bt -ex "info threads" -ex "thread apply all bt 12" \
  --args "$(command -v deno)" test -A --no-check tests/gpu/nccl.test.ts tests/gpu/nvrtc_kernels.test.ts > "$OUT/gdb.log" 2>&1
echo "exit $?"
grep -n -E "SIGSEGV|signal|^#[0-9]" "$OUT/gdb.log" | head -60 | cut -c1-220
