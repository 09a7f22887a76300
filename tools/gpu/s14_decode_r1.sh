#!/usr/bin/env bash
# Session 14 (issue 16 item 1), helper decode, round 1 (~46 s).
#   tune — bench/gemv_tune.ts, GEMV chains of the 8B / 1B (-DGF_XPRE=1 = the engine's default _xpre code, first and last)
#          with options for one role only (new `ROLE:-D...` words) and the new GF_RPW=2 (two weight rows a warp: the 8B
#          qkv's 768 blocks, 1.2 waves at 5 blocks a SM, become 384 in one wave; same bits): qkv / o on RPW 2 (U 4 or 2),
#          qkv + o on U 8 (the 1B's whole 4 KB row before pdlWait, per role; session 10's gemvDeepLoads did it on down too),
#          session 12's qkv-only gain (MINB 6 + U 2) on the qkv alone; the wave tails (8B down: 2,048 blocks = 3.1 waves at
#          5 a SM; qkv 768 = 1.16) with the blocks a SM capped (new `bpsm:ROLE=N`: down 4 -> 3.9 waves, qkv 4 -> 1.45, 3 -> 1.94).
#          Every variant's layer-0 outputs vs the first, bit for bit.
#   peer — bench/gpt_fast_peer.py in its new default form (one layer compiled once, reused by every layer, the whole step
#          captured in one CUDA graph): how long it takes and its tok/s on the 1B preset.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "gemv_tune variants"
X="-DGF_XPRE=1"
timeout 21 bun bench/gemv_tune.ts --models 8b,1b --kinds step,qkv,down --reps 5 \
  "--variants=$X;$X qkv:-DGF_RPW=2;$X qkv:-DGF_RPW=2 qkv:-DGF_U=2;$X qkv:-DGF_RPW=2 o:-DGF_RPW=2;$X qkv:-DGF_U=8 o:-DGF_U=8;$X qkv:-DGF_MINB=6 qkv:-DGF_U=2;$X bpsm:down=4;$X bpsm:qkv=4;$X bpsm:qkv=3;$X" \
  > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "^\||registers|check|ceiling|rror" "$OUT/tune.log" | grep -v -e "---" | cut -c1-200
stamp "gpt-fast peer (1B preset)"
timeout 23 python3 bench/gpt_fast_peer.py --preset llama-3.2-1b --prompt 128 --decode 256 > "$OUT/peer.log" 2>&1
echo "rc $?"
grep -v -i warn "$OUT/peer.log" | tail -8 | cut -c1-400
stamp done
