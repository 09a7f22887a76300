#!/usr/bin/env bash
# Lead side: moves the queued jobs (.gpuq/NAME, oldest first) into .gpub/ for one batched device call while their
# budgets add up to at most CAP seconds (default 420); the rest wait for the next batch. Then call the device with
# carry [".gpucuda", ".gpub"] and command `bash tools/gpu/batch.sh`, and unpack with tools/gpu/batch_unpack.sh.
set -euo pipefail
cap=${1:-420}
cd "$(git rev-parse --show-toplevel)"
rm -rf .gpub && mkdir -p .gpub .gpuq
total=0
for j in $(for d in .gpuq/*/; do [ -d "$d" ] && echo "$(cat "$d/queued") $(basename "$d")"; done | sort -n | cut -d' ' -f2); do
  b=$(cat ".gpuq/$j/budget")
  if [ $((total + b)) -le "$cap" ]; then mv ".gpuq/$j" ".gpub/$j"; total=$((total + b)); echo "batched $j (${b} s, models: $(cat .gpub/$j/models))"; fi
done
echo "total budget ${total} s; left queued: $(ls .gpuq | tr '\n' ' ')"
tree_kib=$(git ls-files -co --exclude-standard -z | xargs -0 du -ck 2> /dev/null | tail -1 | cut -f1)
echo "send ~$(((tree_kib + $(du -sk .gpucuda | cut -f1) + $(du -sk .gpub | cut -f1)) / 1024)) MiB (limit 64)"
