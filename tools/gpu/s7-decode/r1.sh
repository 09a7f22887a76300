#!/usr/bin/env bash
# decode (session 7) round 1: decode_attention_sk + gemv_fused_ks kernel checks (float64, cache bits, batch
# invariance) and timings vs decode_attention / gemv_fused + copy ceiling; then llama-3.2-1b end to end A/B.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
t0=$SECONDS; stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "kernel checks"
timeout 45 python3 tools/cuda-kernel-check/decode_attention_sk.py --only checks,gemvcheck --out "$OUT/checks" > "$OUT/checks.log" 2>&1; echo "rc $?"
grep -E "FAIL|SUMMARY|Error|error" "$OUT/checks.log" | head -24 | cut -c1-300
grep -c "^  ok" "$OUT/checks.log"
stamp "kernel timing"
timeout 50 python3 tools/cuda-kernel-check/decode_attention_sk.py --only time,gemvtime --out "$OUT/time" > "$OUT/time.log" 2>&1; echo "rc $?"
grep -E "copy bandwidth|ctx|MB ceiling|FAIL|SUMMARY|Error" "$OUT/time.log" | head -40 | cut -c1-330
stamp "llama-3.2-1b end to end: A decode_attention, B decode_attention_sk, C B + gemv_fused_ks"
timeout 48 bun bench/decode_pdl.ts --model $M --ctx 128,4096,32768 --decode 64 --check 8 --sk --c '{"decodeSplitK":true,"gemvSplitK":true}' > "$OUT/e2e_1b.log" 2>&1; echo "rc $?"
grep -v "^\s*$" "$OUT/e2e_1b.log" | tail -8 | cut -c1-420
stamp done
