#!/usr/bin/env bash
# Session 14 (issue 16 item 1), helper decode, round 3 (~45 s). r2: gemvTwoRows end to end gave the same bits and no gain
# (8B graph 4,032.4 -> 4,023.9 us at 128 keys, 4,259.8 -> 4,294.2 at 2,048; 1B 766.5 -> 774.6, 834.8 -> 856.9; the 1B
# chain 586 -> 588): it stays off. This round checks the gpt-fast-style peer as the lead would run it (one compiled layer
# reused, the whole step in one CUDA graph; r1: 1B preset 16.0 s in all, 823.3 tok/s) on both presets, with the new
# compiled-vs-eager logits check of the first decode step.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
for p in llama-3.2-1b llama-3.1-8b; do
  lim=$((46 - (SECONDS - _t0)))
  [ "$lim" -gt 8 ] || { stamp "no time left for $p"; break; }
  stamp "gpt-fast peer, $p preset ($lim s)"
  timeout "$lim" python3 bench/gpt_fast_peer.py --preset $p --prompt 128 --decode 256 > "$OUT/peer_$p.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/peer_$p.log" | grep -v PEER_RESULT | tail -4 | cut -c1-500
done
stamp done
