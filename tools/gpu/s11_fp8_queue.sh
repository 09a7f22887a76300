#!/usr/bin/env bash
# Queue helper of helper fp8: mirrors s11/fp8's changes (minus the CPU-only tests) into the worktree /work/wt/fp8q
# (branch s11/fp8q) and queues JOB from there, so the job folder stays under queue_job.sh's 400 KiB.
set -euo pipefail
job=${1:?job}
cd /work/wt/fp8q
git reset -q --hard main
files=$(git -C /work/wt/fp8 diff --name-only --diff-filter=d main -- . ':(exclude,glob)tests/*.ts' ':!bench/RESULTS.md' ':!tools/gpu/results')
for f in $files; do mkdir -p "$(dirname "$f")"; cp "/work/wt/fp8/$f" "$f"; done
git add -A && git commit -qm "queue mirror of s11/fp8 $(git -C /work/wt/fp8 rev-parse --short HEAD)" || true
bash tools/gpu/queue_job.sh fp8 "$job" 45 llama-3.1-8b-fp8
