#!/usr/bin/env bash
# Session 12 (issue 16 item 1), helper decode, round 2. r1: gemvTma with each warp's WHOLE slice in shared memory (64 KB
# + 16.5 KB a block on the 8B: 2 blocks a SM) was 16% slower on the 8B graph (4,032 -> 4,692 us, same bits); the 1B
# launch failed (static + dynamic shared memory over 48 KB without the attribute: fixed); gemv_tune did not parse its
# variants (now --variants=...). Now the _tma entry points hold only the HEAD of a warp's slice in shared memory
# (GF_TMA_HEAD_E = 2 chunks, 4 KB) plus the next chunk in registers before pdlWait, the rest streams as _xpre.
#   tune — bench/gemv_tune.ts, 8B / 1B GEMV chains: engine default (-DGF_XPRE=1, first and last) vs GF_TMA whole slice,
#          head 1 / 2 chunks, GF_PFL2 (L2 prefetch of the rest of the row), LLMRT_PDL_EARLY, head 2 + PDL_EARLY, GF_NWPF
#          (the norm prologue's normW prefetched into L1 before pdlWait)
#   ab1b — decode_pdl --ab '{"gemvTma":true}' --c '{"decodeArgmax":true}'; ab8b — the same without C
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "gemv_tune variants"
X="-DGF_XPRE=1"
T="$X -DGF_TMA=1"
timeout 18 bun bench/gemv_tune.ts --models 8b,1b --kinds step,qkv,o,gu,down --reps 5 \
  "--variants=$X;$T;$T -DGF_TMA_HEAD=1;$T -DGF_TMA_HEAD=2;$X -DGF_PFL2=1;$X -DLLMRT_PDL_EARLY=1;$T -DGF_TMA_HEAD=2 -DLLMRT_PDL_EARLY=1;$X -DGF_NWPF=1;$X" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "^\||registers|check|ceiling|rror" "$OUT/tune.log" | grep -v -e "---" | cut -c1-200
stamp "1B A default / B gemvTma / C decodeArgmax"
timeout 12 bun bench/decode_pdl.ts --model $M1 --ab '{"gemvTma":true}' --c '{"decodeArgmax":true}' --ctx 128,1024 --decode 128 --check 4 > "$OUT/ab1b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab1b.log" | cut -c1-420 | head -9
left=$((44 - (SECONDS - _t0)))
[ "$left" -gt 8 ] || { stamp "no time left for 8B"; exit 0; }
stamp "8B A default / B gemvTma ($left s)"
timeout "$left" bun bench/decode_pdl.ts --model $M8 --ab '{"gemvTma":true}' --ctx 128,2048 --decode 32 --check 2 > "$OUT/ab8b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab8b.log" | cut -c1-420 | head -8
stamp done
