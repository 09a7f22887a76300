#!/usr/bin/env bash
# Session 14: decode_attention_batch4's "graphs = eager" GPU test failed on merged main (12-sequence eager decode logits
# differ from the graphs'); passed at 37024b8 (session 13's suite). One case (hd128 G4, bf16 cache) at HEAD with the two
# new prefill defaults off in turn, then at earlier commits (trees from .gpub_bis/COMMIT.tgz).
set -uo pipefail
source .gpucuda/boot.sh > /dev/null
export LLMRT_CACHE_DIR=/tmp/llmrt-cache NO_COLOR=1
t0=$SECONDS
one() { # LABEL DIR [ENV=..]
  local label=$1 dir=$2; shift 2
  echo "== [$((SECONDS - t0)) s] $label"
  (cd "$dir" && env "$@" timeout 45 bun test --timeout 600000 tests/gpu/batch_attention4.test.ts -t "hd128 G4, bf16 cache\)" 2>&1) > /tmp/bis_$label.log
  grep -E "^\((pass|fail)\)|AssertionError|^ *[0-9]+ (pass|fail)" /tmp/bis_$label.log | cut -c1-200 | head -4
}
one head . X=1
one head_nocache . LLMRT_PREFILL_PLAN_CACHE=0
one head_nopdl . LLMRT_PREFILL_PDL=0
for c in 86f79f3 119f127 37024b8; do
  mkdir -p /tmp/bis/$c && tar -C /tmp/bis/$c -xzf .gpub_bis/$c.tgz && ln -s "$PWD/.gpucuda/node_modules" /tmp/bis/$c/node_modules
  one "at_$c" /tmp/bis/$c X=1
done
echo "== [$((SECONDS - t0)) s] done"
