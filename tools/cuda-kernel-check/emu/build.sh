#!/bin/sh
# Builds the CPU emulation of every kernel file into one shared library: emu/build/llmrt_kernels_emu.so
# Usage: tools/cuda-kernel-check/emu/build.sh   (needs g++ >= 11; no CUDA)
# EMU_BUILD_DIR=<dir> EMU_CXXFLAGS=-DSAMPLE_LIST_CAP=16 builds a variant elsewhere; point the harness at it
# with LLMRT_EMU_SO=<dir>/llmrt_kernels_emu.so.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
kdir=$(cd "$here/../../../lib/backends/cuda/kernels" && pwd)
out="${EMU_BUILD_DIR:-$here/build}"
mkdir -p "$out"
objs=""
for name in embedding rmsnorm add silu_mul gather_rows qk_norm rope_kv_write paged_attention sampling gemv; do
  f="$kdir/$name.cu"
  # The mma inline PTX becomes the emulated mma (same fragment layout).
  python3 - "$f" "$out/$name.cpp" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
src = re.sub(r'asm volatile\(\s*"mma\.sync.*?\);', 'llmrtEmuMma(d, a, b0, b1);', src, flags=re.S)
open(sys.argv[2], 'w').write(src)
PY
  g++ -std=c++20 -O1 -fPIC -pthread -w ${EMU_CXXFLAGS:-} -I"$kdir" -include "$here/cuda_emu.h" -c "$out/$name.cpp" -o "$out/$name.o"
  objs="$objs $out/$name.o"
done
g++ -std=c++20 -O1 -fPIC -pthread -w -I"$here" -c "$here/emu_launch.cpp" -o "$out/emu_launch.o"
g++ -shared -pthread -o "$out/llmrt_kernels_emu.so" $objs "$out/emu_launch.o"
echo "$out/llmrt_kernels_emu.so"
