#!/usr/bin/env bash
# Queues a device job from a helper's git worktree for the lead's next batched device call
# (tools/gpu/batch.sh runs the queued jobs one after another on one machine, so a machine start is paid once
# per batch, not once per helper). From the worktree:
#   bash tools/gpu/queue_job.sh NAME JOB.sh BUDGET_S [MODEL ...]
# copies the files this worktree changed since it left `main` (committed or not, plus untracked ones) into
# <main checkout>/.gpuq/NAME/tree, the job script to .gpuq/NAME/job.sh, and the budget (seconds the job may run,
# a hard `timeout`) and the checkpoints it needs (llama-3.2-1b, llama-3.1-8b, llama-3.2-3b, qwen2.5-0.5b, ...;
# `hfrefs` = tools/gpu/hf_models.py's checkpoints + transformers references; every checkpoint gets the synthetic
# word-level tokenizer, `llama-1b-bytes` is llama-3.2-1b's weights with the byte-level one). Queuing again
# replaces a job that has not run yet. Results come back in /work/devq/results/NAME/rROUND/ (a file DONE
# appears there when the round's results are unpacked): job.log (stdout+stderr) and whatever the job wrote to $OUT.
# Logs, bench/RESULTS.md and README.md stay behind (the device needs none of them; the send is near its 64 MiB).
# On the device the job runs with cwd = a fresh copy of main's tree overlaid with yours, Bun on PATH,
# node_modules linked, LLMRT_CACHE_DIR shared by the batch, checkpoints in /tmp/hfmodels/<preset>, and
# ../shared/models holding stories260k.
set -euo pipefail
name=${1:?usage: queue_job.sh NAME JOB.sh BUDGET_S [MODEL ...]}
job=${2:?job script}
budget=${3:?budget seconds}
shift 3
[[ $name =~ ^[a-z0-9-]+$ ]] || { echo "NAME: lowercase letters, digits and '-' only" >&2; exit 1; }
wt=$(git rev-parse --show-toplevel)
main=$(cd "$(git rev-parse --git-common-dir)/.." && pwd)
[ "$wt" != "$main" ] || { echo "run this from a worktree, not the main checkout" >&2; exit 1; }
q="$main/.gpuq"
tmp="$q/.$name.tmp"
rm -rf "$tmp" && mkdir -p "$tmp/tree"
cp "$job" "$tmp/job.sh"
echo "$budget" > "$tmp/budget"
echo "$*" > "$tmp/models"
date +%s > "$tmp/queued"
cd "$wt"
git rev-parse HEAD > "$tmp/head"
base=$(git merge-base HEAD main)
{ git diff --name-only -z --diff-filter=d "$base"; git ls-files -oz --exclude-standard; } | sort -zu \
  | { grep -zv -E '^(tools/gpu/results/|tools/cuda-kernel-check/results/|bench/RESULTS\.md$|README\.md$)' || true; } \
  | xargs -0 -r cp --parents -t "$tmp/tree"
git diff --name-only --diff-filter=D "$base" > "$tmp/deleted" || true
kib=$(($(du -sb "$tmp" | cut -f1) / 1024))
[ "$kib" -lt 400 ] || { echo "job folder is ${kib} KiB: carry less (limit 400 KiB a job: the send is near its 64 MiB)" >&2; rm -rf "$tmp"; exit 1; }
rm -rf "${q:?}/$name" && mv "$tmp" "$q/$name"
echo "queued $name (${kib} KiB, budget ${budget} s, models: ${*:-none}); results: /work/devq/results/$name/rN/DONE"
