#!/usr/bin/env bash
# decode (session 5), llama-3.1-8b bf16 batch 1: PDL A/B of this branch (one engine, two sessions, bitwise
# check of the logits, decode tokens/s and graph replay at contexts 128 / 4096 / 32768 beside the copy ceiling).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M8=/tmp/hfmodels/llama-3.1-8b
t0=$SECONDS; stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
[ -f $M8/config.json ] || { echo "no llama-3.1-8b checkpoint"; exit 0; }
stamp "8B: this branch, pdl off / on"
timeout 75 bun bench/decode_pdl.ts --model $M8 --ctx 128,4096,32768 --decode 128 --check 4 > "$OUT/decode_pdl_8b.log" 2>&1; echo "rc $?"
grep -v "^\s*$" "$OUT/decode_pdl_8b.log" | tail -5 | cut -c1-250
stamp done
