#!/usr/bin/env bash
# Lead side: moves the queued jobs (.gpuq/NAME, oldest first) into .gpub/ for one batched device call while their
# budgets add up to at most CAP seconds (default 420); the rest wait for the next batch; HOLD_MODELS=REGEX leaves
# jobs needing those checkpoints queued. Then call the device with
# carry [".gpucuda", ".gpub"] and command `bash tools/gpu/batch.sh`, and unpack with tools/gpu/batch_unpack.sh.
set -euo pipefail
cap=${1:-420}
cd "$(git rev-parse --show-toplevel)"
rm -rf .gpub && mkdir -p .gpub .gpuq
total=0
for j in $(for d in .gpuq/*/; do [ -d "$d" ] && echo "$(cat "$d/queued") $(basename "$d")"; done | sort -n | cut -d' ' -f2); do
  b=$(cat ".gpuq/$j/budget")
  if [ -n "${HOLD_MODELS:-}" ] && grep -qwE "$HOLD_MODELS" ".gpuq/$j/models"; then echo "held $j (needs $(cat .gpuq/$j/models))"; continue; fi
  if [ $((total + b)) -le "$cap" ]; then mv ".gpuq/$j" ".gpub/$j"; total=$((total + b)); echo "batched $j (${b} s, models: $(cat .gpub/$j/models))"; fi
done
echo "total budget ${total} s; left queued: $(ls .gpuq | tr '\n' ' ')"
# each job's files travel as one gzip archive (source text packs ~4x; batch.sh unpacks tree.tgz over the job's copy)
for d in .gpub/*/; do
  [ -d "$d/tree" ] || continue
  tar -C "$d/tree" -czf "$d/tree.tgz" . && rm -rf "$d/tree"
done
tree_b=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2> /dev/null | tail -1 | cut -f1 || true) # files moved aside for the send (tools/gpu/results) are missing: du fails on them
send=$((tree_b + $(du -sb .gpucuda | cut -f1) + $(du -sb .gpub | cut -f1)))
echo "send $((send / 1048576)).$((send % 1048576 * 10 / 1048576)) MiB (limit 64)"
[ "$send" -lt $((63 * 1048576 + 524288)) ] || { echo "too large to send: take a job back into .gpuq" >&2; exit 1; }
