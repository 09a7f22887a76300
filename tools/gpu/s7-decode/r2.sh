#!/usr/bin/env bash
# decode (session 7) round 2: GPU test (batch invariance of decode_attention_sk at ~2,000 keys, graphs vs eager,
# vs decode_attention), llama-3.1-8b end to end A (decode_attention) / B (decode_attention_sk) / C (B + gemv_fused_ks)
# at contexts 128 / 4096 / 32768, llama-3.2-1b batch-1 latency with the gpt-fast-style peer (new paths on).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
M8=/tmp/hfmodels/llama-3.1-8b
t0=$SECONDS; stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "GPU test: decode_sk"
timeout 40 bun test --timeout 300000 tests/gpu/decode_sk.test.ts > "$OUT/gputest.log" 2>&1; echo "rc $?"
grep -E "head dim|decode_attention|pass|fail|error" "$OUT/gputest.log" | head -16 | cut -c1-300
stamp "llama-3.1-8b end to end: A / B / C"
if [ -f $M8/config.json ]; then
  timeout 95 bun bench/decode_pdl.ts --model $M8 --ctx 128,4096,32768 --decode 48 --check 4 --sk --c '{"decodeSplitK":true,"gemvSplitK":true}' > "$OUT/e2e_8b.log" 2>&1; echo "rc $?"
  grep -v "^\s*$" "$OUT/e2e_8b.log" | tail -8 | cut -c1-420
else echo "no llama-3.1-8b checkpoint"; fi
stamp "llama-3.2-1b batch-1 latency, decode_attention_sk + gemv_fused_ks, with the peer"
LLMRT_DECODE_SK=1 LLMRT_GEMV_KS=1 timeout 55 bun bench/latency.ts --model $M --prompt-lens 128 --decode 256 --peer > "$OUT/latency_1b.log" 2>&1; echo "rc $?"
grep -v "^\s*$" "$OUT/latency_1b.log" | tail -12 | cut -c1-300
stamp done
