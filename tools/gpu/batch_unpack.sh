#!/usr/bin/env bash
# Lead side: unpacks a batch's results (the device reply's files_at folder) into /work/devq/results/NAME/rROUND/
# and marks each with DONE (helpers poll for it). The batch's own log (stdout) goes to each as batch.log when given.
# Usage: bash tools/gpu/batch_unpack.sh FILES_AT ROUND [BATCH_LOG]
set -euo pipefail
at=${1:?files_at}
round=${2:?round}
for t in "$at"/*.tgz; do
  name=$(basename "$t" .tgz)
  d=/work/devq/results/$name/r$round
  rm -rf "$d" && mkdir -p "$d" # a stale round of an earlier session must not read as done
  tar -C "$d" --strip-components=1 -xzf "$t"
  [ -z "${3:-}" ] || cp "$3" "$d/batch.log"
  touch "$d/DONE"
  echo "$name -> $d"
done
