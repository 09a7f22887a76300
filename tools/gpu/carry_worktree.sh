#!/usr/bin/env bash
# Copies the files this worktree changed since it left `main` (committed or not, plus untracked ones)
# into <main checkout>/.gpu-NAME/, which .git/info/exclude ignores, so a device run — which always
# sends the main checkout (main's HEAD, about 62 MiB with .gpucuda) — can carry a helper worktree's
# changes. On the device, overlay them onto main's tree first:
#   run(carry: [".gpucuda", ".gpu-NAME"], command: "cp -a .gpu-NAME/. . && bash tools/gpu/...")
# Usage (from the worktree): bash tools/gpu/carry_worktree.sh NAME
set -euo pipefail
name=${1:?usage: carry_worktree.sh NAME}
wt=$(git rev-parse --show-toplevel)
main=$(cd "$(git rev-parse --git-common-dir)/.." && pwd)
[ "$wt" != "$main" ] || { echo "run this from a worktree, not the main checkout" >&2; exit 1; }
grep -qx '/.gpu-\*/' "$main/.git/info/exclude" || echo '/.gpu-*/' >> "$main/.git/info/exclude"
dest="$main/.gpu-$name"
rm -rf "$dest" && mkdir -p "$dest"
cd "$wt"
base=$(git merge-base HEAD main)
{ git diff --name-only -z --diff-filter=d "$base"; git ls-files -oz --exclude-standard; } | sort -zu \
  | grep -zv -E '^(tools/gpu/results/|tools/cuda-kernel-check/results/)' | xargs -0 -r cp --parents -t "$dest"
# Files this worktree deleted would survive the overlay: list them for the command to remove.
git diff --name-only --diff-filter=D "$base" > "$dest/.deleted" || true
echo "carried $(du -sh "$dest" | cut -f1) to $dest (overlay with: cp -a .gpu-$name/. . && xargs -r rm -f < .deleted)"
