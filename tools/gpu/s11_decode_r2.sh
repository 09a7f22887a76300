#!/usr/bin/env bash
# Session 11 (issue 16 item 1), helper decode, round 2 (round 1: the 8B breakdown, tools/gpu/results/s11-decode/r1).
#   tune — bench/gemv_tune.ts: the 8B / 1B decode GEMV chains (qkv, o_proj, gate_up, down a layer; PDL), by role, one
#          process: the default vs gemv1 (new: persistent one-token GEMV, a register ring across rows; gemv_fused_ks's
#          sums bit for bit — CPU emulation 320 cases) at 2 / 3 blocks a SM, 64 registers (GV1_MINB 4), ring depth 12, on qkv / o / down only,
#          with the next 8 loads a lane prefetched into L2 before the wait (GV1_PF); o / qkv split 2 warps a row;
#          registers of each entry point
#   ab8b / ab1b — bench/decode_pdl.ts --ab '{"gemv1":true}': tok/s, graph replay, logits bit for bit vs the default
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "gemv_tune variants"
timeout 16 bun bench/gemv_tune.ts --models 8b,1b --kinds step,qkv,o,gu,down \
  --variants "default;gemv1;gemv1 g1b=3;gemv1:qkv,o,down;gemv1 -DGV1_PF=8;gemv1 -DGV1_MINB=4;gemv1 -DGV1_D=12;ks:o=2,qkv=2" > "$OUT/tune.log" 2>&1; echo "rc $?"
grep -E "^\||registers|ceiling|rror" "$OUT/tune.log" | grep -v -e "---" | cut -c1-160
stamp "8B A default / B gemv1"
timeout 21 bun bench/decode_pdl.ts --model $M8 --ab '{"gemv1":true}' --ctx 128,2048 --decode 64 --check 2 > "$OUT/ab8b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab8b.log" | cut -c1-420 | head -8
left=$((43 - (SECONDS - _t0)))
[ "$left" -gt 5 ] || { stamp "no time left for 1B"; exit 0; }
stamp "1B A default / B gemv1 ($left s)"
timeout "$left" bun bench/decode_pdl.ts --model $M1 --ab '{"gemv1":true}' --ctx 128,1024 --decode 64 --check 2 > "$OUT/ab1b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab1b.log" | cut -c1-420 | head -8
stamp done
