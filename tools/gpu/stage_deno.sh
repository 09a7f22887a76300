#!/usr/bin/env bash
# Stages .gpudeno/ for a device run under Deno (issue 16 part 6): Deno's binary from npm (xz -6,
# about 31 MB), a boot.sh that unpacks it and links node_modules, hf_reference.py, stories260k and
# the trimmed node_modules of tools/gpu/stage.sh. Carry [".gpudeno"] and run, on the GPU host:
#   source .gpudeno/boot.sh && deno test -A --no-check tests/gpu
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
shared=${LLMRT_SHARED:-$root/../shared}
grep -qx '/.gpudeno/' .git/info/exclude 2>/dev/null || echo '/.gpudeno/' >> .git/info/exclude
rm -rf .gpudeno && mkdir -p .gpudeno/node_modules/@huggingface .gpudeno/models
xz -6 -T2 -c node_modules/deno/deno > .gpudeno/deno.xz
cp "$shared/gpu/hf_reference.py" .gpudeno/
cp -a "$shared/models/stories260k" .gpudeno/models/
cp -a node_modules/@huggingface/jinja node_modules/@huggingface/tokenizers .gpudeno/node_modules/@huggingface/
cp -a node_modules/zod .gpudeno/node_modules/
rm -rf .gpudeno/node_modules/zod/src .gpudeno/node_modules/zod/v3 .gpudeno/node_modules/zod/*/v3
# llmrt serve's packages (hono, prom-client and its two dependencies), without CommonJS builds and tests.
mkdir -p .gpudeno/node_modules/@opentelemetry
cp -a node_modules/hono node_modules/prom-client node_modules/tdigest node_modules/bintrees .gpudeno/node_modules/
cp -a node_modules/@opentelemetry/api .gpudeno/node_modules/@opentelemetry/
rm -rf .gpudeno/node_modules/hono/dist/cjs .gpudeno/node_modules/hono/dist/types .gpudeno/node_modules/bintrees/test .gpudeno/node_modules/bintrees/bench .gpudeno/node_modules/bintrees/dist
# Guided decoding (xgrammar compiled to WebAssembly) and mitata (benches), as tools/gpu/stage.sh stages them.
mkdir -p .gpudeno/node_modules/@mlc-ai && cp -a node_modules/@mlc-ai/web-xgrammar .gpudeno/node_modules/@mlc-ai/
cp -a node_modules/mitata .gpudeno/node_modules/
find .gpudeno/node_modules -name '*.d.ts' -delete -o -name '*.d.cts' -delete -o -name '*.d.mts' -delete -o -name '*.map' -delete
cat > .gpudeno/boot.sh <<'BOOT'
# Source on the GPU host: unpacks Deno once, puts it on PATH, links node_modules, exports LLMRT_MODELS.
_g=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ ! -x /tmp/llmrt-deno/deno ]; then
  mkdir -p /tmp/llmrt-deno
  if command -v xz >/dev/null; then xz -dc "$_g/deno.xz" > /tmp/llmrt-deno/deno
  else python3 -c "import lzma,shutil,sys;shutil.copyfileobj(lzma.open(sys.argv[1]),open(sys.argv[2],'wb'))" "$_g/deno.xz" /tmp/llmrt-deno/deno
  fi
  chmod +x /tmp/llmrt-deno/deno
fi
export PATH=/tmp/llmrt-deno:$PATH DENO_NO_UPDATE_CHECK=1
[ -e node_modules ] || ln -s "$_g/node_modules" node_modules
export LLMRT_MODELS="$_g/models"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
# Suites that read ../shared find the staged models there.
mkdir -p "$(cd .. && pwd)/shared" && ln -sfn "$LLMRT_MODELS" "$(cd .. && pwd)/shared/models"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "deno $(deno --version | head -1); models in \$LLMRT_MODELS: $(ls "$LLMRT_MODELS" | tr '\n' ' ')"
BOOT
tree_kib=$(git ls-files -co --exclude-standard -z | xargs -0 du -ck 2>/dev/null | tail -1 | cut -f1 || true)
gpu_kib=$(du -sk .gpudeno | cut -f1)
echo "staged .gpudeno: $((gpu_kib / 1024)) MiB; working tree: $((tree_kib / 1024)) MiB; together ~$(((tree_kib + gpu_kib) / 1024)) MiB (limit 64)"
[ $(((tree_kib + gpu_kib) / 1024)) -lt 63 ] || { echo "too large to send" >&2; exit 1; }
