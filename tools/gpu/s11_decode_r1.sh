#!/usr/bin/env bash
# Session 11 (issue 16 item 1), helper decode, round 1: where the llama-3.1-8b batch-1 step goes.
#   tune  — bench/gemv_tune.ts: the 8B / 1B decode GEMV chains, gemv1 (new: persistent one-token GEMV, a register ring
#           across rows, same bits as gemv_fused(_ks): CPU emulation 320 cases bitwise) vs the default, (qkv, o_proj, gate_up, down per layer; PDL) by role,
#           compile-time variants of gemv.cu (GF_PIPE: next chunk issued before the current is summed; GF_XPRE: x loaded
#           with the weights; LLMRT_PDL_EARLY; ks: warps per row of o_proj / qkv / down) against the default in one process, registers per entry point
#   brk8b — bench/decode_breakdown.ts llama-3.1-8b, default session: graph replay by role (marginal / alone / % copy)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "gemv_tune variants"
timeout 24 bun bench/gemv_tune.ts --models 8b,1b --kinds step,qkv,o,gu,down \
  --variants "default;gemv1;gemv1 g1b=3;gemv1:qkv,o,down;gemv1 -DGV1_D=12;-DGF_PIPE=1;-DGF_PIPE=1 -DGF_XPRE=1;ks:o=2,qkv=2;-DLLMRT_PDL_EARLY=1" > "$OUT/tune.log" 2>&1; echo "rc $?"
grep -E "^\||registers|ceiling|rror" "$OUT/tune.log" | grep -v -e "---" | cut -c1-160
left=$((41 - (SECONDS - _t0)))
[ "$left" -gt 8 ] || { stamp "no time left for the breakdown"; exit 0; }
stamp "8B breakdown (default, $left s)"
timeout "$left" bun bench/decode_breakdown.ts --model $M8 --ctx 128 > "$OUT/brk8b.log" 2>&1; echo "rc $?"
grep -v "^  #" "$OUT/brk8b.log" | grep -v -i warn | cut -c1-200 | head -24
grep "^  #" "$OUT/brk8b.log" | cut -c1-120
stamp done
