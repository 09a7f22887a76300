#!/usr/bin/env bash
# decode (session 5) round 3, llama-3.2-1b: the final figure (bench/latency.ts --peer: PDL on by default, the
# gpt-fast-style PyTorch peer in the same run), then the kernel checks (decode_step.py --only checks: the
# decode_attention fix for splits shorter than a tile, NaN now fails, _g4 bitwise == decode_attention).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
t0=$SECONDS; stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stamp "latency.ts --peer"
timeout 75 bun bench/latency.ts --model $M --peer > "$OUT/latency.log" 2>&1; echo "rc $?"
grep -v "^\s*$" "$OUT/latency.log" | cut -c1-200 | head -40
stamp "kernel checks"
timeout 40 python3 tools/cuda-kernel-check/decode_step.py --only checks > "$OUT/decode_step_checks.log" 2>&1; echo "rc $?"
echo "ok $(grep -c '^  ok  ' "$OUT/decode_step_checks.log"), FAIL $(grep -c '^  FAIL' "$OUT/decode_step_checks.log")"; grep '^  FAIL' "$OUT/decode_step_checks.log" | head -8 | cut -c1-250
tail -1 "$OUT/decode_step_checks.log"
stamp done
