#!/usr/bin/env bash
# decode (session 7) round 1: decode_attention_sk kernel checks (float64, cache bits, batch invariance) and
# timings vs decode_attention + copy ceiling; then llama-3.2-1b end to end A/B (decode_attention vs _sk).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
t0=$SECONDS; stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "kernel checks"
timeout 55 python3 tools/cuda-kernel-check/decode_attention_sk.py --only checks --out "$OUT/checks" > "$OUT/checks.log" 2>&1; echo "rc $?"
grep -E "FAIL|SUMMARY|Error|error" "$OUT/checks.log" | head -30 | cut -c1-300
stamp "kernel timing"
timeout 45 python3 tools/cuda-kernel-check/decode_attention_sk.py --only time --out "$OUT/time" > "$OUT/time.log" 2>&1; echo "rc $?"
grep -E "copy bandwidth|ctx|FAIL|SUMMARY|Error" "$OUT/time.log" | head -30 | cut -c1-300
stamp "llama-3.2-1b: decode_attention vs decode_attention_sk end to end"
timeout 45 bun bench/decode_pdl.ts --model $M --ctx 128,1024,4096,32768 --decode 128 --check 16 --sk > "$OUT/e2e_1b.log" 2>&1; echo "rc $?"
grep -v "^\s*$" "$OUT/e2e_1b.log" | tail -8 | cut -c1-400
stamp done
