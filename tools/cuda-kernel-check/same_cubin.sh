#!/usr/bin/env bash
# Refactors of CUDA kernel files without a GPU: compiles lib/backends/cuda/kernels/FILE as it is at git revision REV and
# as it is in the working tree (each with its own kernels folder on the include path, as compiler.ts does for NVRTC)
# with the local nvcc, and compares the two CUBINs byte for byte. Identical CUBINs run the same instructions: the same
# bits on any GPU of that arch. The arch is sm_90 (sm_90a for flash_prefill_wg.cu, compiler.ts ARCH_SPECIFIC_FILES).
#   bash tools/cuda-kernel-check/same_cubin.sh REV FILE.cu [NVCC -D FLAGS ...]
# e.g. same_cubin.sh main decode_attention_batch4.cu -DDB4_FAST=0. Where the CUBINs differ, cubin_sections.py compares them
# kernel by kernel (exit status 0 when every kernel both have has the same code).
set -euo pipefail
rev=${1:?usage: same_cubin.sh REV FILE.cu [-DNAME=VALUE ...]}
file=${2:?kernel file, e.g. decode_attention_batch4.cu}
shift 2
root=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d /tmp/same-cubin.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/old"
git -C "$root" archive "$rev" lib/backends/cuda/kernels | tar -x -C "$tmp/old"
arch=sm_90
[ "$file" = flash_prefill_wg.cu ] && arch=sm_90a
for side in old new; do
  dir=$root/lib/backends/cuda/kernels
  [ $side = old ] && dir=$tmp/old/lib/backends/cuda/kernels
  nvcc -cubin -arch=$arch -std=c++17 "$@" -I "$dir" -o "$tmp/$side.cubin" "$dir/$file"
done
if cmp -s "$tmp/old.cubin" "$tmp/new.cubin"; then
  echo "$file ($arch $*): identical CUBINs ($(stat -c %s "$tmp/new.cubin") bytes) at $rev and in the working tree"
else
  echo "$file ($arch $*): the CUBINs differ between $rev and the working tree; kernel by kernel:" >&2
  python3 "$root/tools/cuda-kernel-check/cubin_sections.py" "$tmp/old.cubin" "$tmp/new.cubin"
fi
