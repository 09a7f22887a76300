#!/usr/bin/env bash
# Lead side: adds a job that runs on main's own tree (no helper overlay) to the batch in .gpub/, after
# tools/gpu/batch_prepare.sh (which empties .gpub/). batch.sh runs the jobs in name order: prefix a name with 0- to run it
# first (e.g. the session's suite + closing figures before the helpers' jobs).
#   bash tools/gpu/batch_add_main_job.sh NAME JOB.sh BUDGET_S [MODEL ...]
# e.g. bash tools/gpu/batch_add_main_job.sh 0-first tools/gpu/session15_first.sh 320
#      bash tools/gpu/batch_add_main_job.sh 1-closing tools/gpu/session14_closing.sh 300 hfrefs llama-3.1-8b llama-3.1-8b-fp8 llama-3.2-1b
set -euo pipefail
name=${1:?usage: batch_add_main_job.sh NAME JOB.sh BUDGET_S [MODEL ...]}
job=${2:?job script}
budget=${3:?budget seconds}
shift 3
[[ $name =~ ^[a-z0-9-]+$ ]] || { echo "NAME: lowercase letters, digits and '-' only" >&2; exit 1; }
cd "$(git rev-parse --show-toplevel)"
d=.gpub/$name
rm -rf "$d" && mkdir -p "$d/tree"
cp "$job" "$d/job.sh"
echo "$budget" > "$d/budget"
echo "$*" > "$d/models"
touch "$d/deleted"
total=$(cat .gpub/*/budget | paste -sd+ | bc)
echo "added $name (${budget} s, models: $*); batch budget now ${total} s (one call runs at most 600 s, checkpoints included)"
