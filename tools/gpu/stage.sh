#!/usr/bin/env bash
# Stages .gpucuda/ for a device run of this checkout (the trimmed form of ../shared/gpu/stage.sh; zod without its
# CommonJS build — prom-client needs @opentelemetry/api's .cjs, so only zod's go):
# Bun, boot.sh, hf_reference.py, models/stories260k and only the node_modules the GPU run needs
# (zod without sources/types/v3, @huggingface/*, mitata, hono + prom-client, web-xgrammar), git-ignored through .git/info/exclude.
# Then: run with carry [".gpucuda"] and the command `bash tools/gpu/run.sh` (see that file).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
shared=${LLMRT_SHARED:-$root/../shared}
grep -qx '/.gpucuda/' .git/info/exclude || echo '/.gpucuda/' >> .git/info/exclude
rm -rf .gpucuda && mkdir -p .gpucuda/node_modules/@huggingface .gpucuda/models
cp "$shared"/gpu/bun-*-linux-x64.xz .gpucuda/bun.xz
cp "$shared/gpu/boot.sh" "$shared/gpu/hf_reference.py" .gpucuda/
cp -a "$shared/models/stories260k" .gpucuda/models/
cp -a node_modules/@huggingface/jinja node_modules/@huggingface/tokenizers .gpucuda/node_modules/@huggingface/
cp -a node_modules/mitata .gpucuda/node_modules/
cp -a node_modules/zod .gpucuda/node_modules/
rm -rf .gpucuda/node_modules/zod/src .gpucuda/node_modules/zod/v3 .gpucuda/node_modules/zod/*/v3
# llmrt serve's packages (hono, prom-client and its two dependencies), without CommonJS builds and tests.
mkdir -p .gpucuda/node_modules/@opentelemetry
cp -a node_modules/hono node_modules/prom-client node_modules/tdigest node_modules/bintrees .gpucuda/node_modules/
cp -a node_modules/@opentelemetry/api .gpucuda/node_modules/@opentelemetry/
# Guided decoding (xgrammar compiled to WebAssembly, one 1.1 MB file without its source map).
mkdir -p .gpucuda/node_modules/@mlc-ai && cp -a node_modules/@mlc-ai/web-xgrammar .gpucuda/node_modules/@mlc-ai/
rm -rf .gpucuda/node_modules/hono/dist/cjs .gpucuda/node_modules/hono/dist/types .gpucuda/node_modules/bintrees/test .gpucuda/node_modules/bintrees/bench .gpucuda/node_modules/bintrees/dist
find .gpucuda/node_modules/zod -name '*.cjs' -delete
find .gpucuda/node_modules -name '*.d.ts' -delete -o -name '*.d.cts' -delete -o -name '*.d.mts' -delete -o -name '*.map' -delete
tree_b=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
gpu_b=$(du -sb .gpucuda | cut -f1)
echo "staged .gpucuda: $((gpu_b / 1048576)) MiB; working tree: $((tree_b / 1048576)) MiB; together ~$(((tree_b + gpu_b) / 1048576)) MiB (limit 64, counted in bytes)"
[ $(((tree_b + gpu_b) / 1048576)) -lt 63 ] || { echo "too large to send" >&2; exit 1; }
