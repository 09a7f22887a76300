#!/usr/bin/env bash
# decode (session 7) round 2: decode_attention_sk with the batched block-table loads: quick kernel checks and
# timings; GPU test (batch invariance at ~2,000 keys, graphs vs eager, vs decode_attention); end to end A
# (decode_attention) / B (decode_attention_sk) / C (B + gemv_fused_ks on long rows) on llama-3.2-1b and llama-3.1-8b.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
M8=/tmp/hfmodels/llama-3.1-8b
t0=$SECONDS; stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "kernel checks (quick)"
timeout 20 python3 tools/cuda-kernel-check/decode_attention_sk.py --only checks --quick --out "$OUT/checks" > "$OUT/checks.log" 2>&1; echo "rc $?"
grep -E "FAIL|SUMMARY|Error|error" "$OUT/checks.log" | head -12 | cut -c1-300; grep -c "^  ok" "$OUT/checks.log"
stamp "kernel timing"
timeout 24 python3 tools/cuda-kernel-check/decode_attention_sk.py --only time --quick --out "$OUT/time" > "$OUT/time.log" 2>&1; echo "rc $?"
grep -E "copy bandwidth|ctx|FAIL|Error" "$OUT/time.log" | head -14 | cut -c1-300
stamp "GPU test: decode_sk"
timeout 36 bun test --timeout 300000 tests/gpu/decode_sk.test.ts > "$OUT/gputest.log" 2>&1; echo "rc $?"
grep -E "head dim|decode_attention|pass|fail|rror" "$OUT/gputest.log" | head -14 | cut -c1-300
stamp "llama-3.2-1b end to end: A / B / C"
timeout 38 bun bench/decode_pdl.ts --model $M --ctx 128,4096,32768 --decode 64 --check 8 --sk --c '{"decodeSplitK":true,"gemvSplitK":true}' > "$OUT/e2e_1b.log" 2>&1; echo "rc $?"
grep -v "^\s*$" "$OUT/e2e_1b.log" | tail -7 | cut -c1-420
stamp "llama-3.1-8b end to end: A / B / C"
if [ -f $M8/config.json ]; then
  timeout 75 bun bench/decode_pdl.ts --model $M8 --ctx 128,32768 --decode 32 --check 4 --sk --c '{"decodeSplitK":true,"gemvSplitK":true}' > "$OUT/e2e_8b.log" 2>&1; echo "rc $?"
  grep -v "^\s*$" "$OUT/e2e_8b.log" | tail -7 | cut -c1-420
else echo "no llama-3.1-8b checkpoint"; fi
stamp done
