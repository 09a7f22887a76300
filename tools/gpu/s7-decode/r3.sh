#!/usr/bin/env bash
# decode (session 7) round 3, the closing run with decode_attention_sk and gemv_fused_ks on by default: GPU tests
# (decode_sk, pdl, cuda_session vs transformers), llama-3.2-1b batch-1 latency with the gpt-fast-style peer,
# llama-3.1-8b A (decode_attention, LLMRT_DECODE_SK=0 path) / B (default) at contexts 128 and 32768.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
M8=/tmp/hfmodels/llama-3.1-8b
t0=$SECONDS; stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "GPU tests: decode_sk, pdl, cuda_session"
timeout 75 bun test --timeout 300000 tests/gpu/decode_sk.test.ts tests/gpu/pdl.test.ts tests/gpu/cuda_session.test.ts > "$OUT/gputests.log" 2>&1; echo "rc $?"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|head dim|decode_attention|worst rel|batch vs single greedy" "$OUT/gputests.log" | cut -c1-260 | head -24
stamp "llama-3.2-1b batch-1 latency with the peer (defaults)"
timeout 60 bun bench/latency.ts --model $M --prompt-lens 128 --decode 256 --peer > "$OUT/latency_1b.log" 2>&1; echo "rc $?"
grep -v "^\s*$" "$OUT/latency_1b.log" | tail -14 | cut -c1-300
stamp "llama-3.1-8b: A decode_attention / B defaults"
if [ -f $M8/config.json ]; then
  timeout 55 bun bench/decode_pdl.ts --model $M8 --ctx 128,32768 --decode 32 --check 4 --sk --b '{"gemvSplitK":true}' > "$OUT/e2e_8b.log" 2>&1; echo "rc $?"
  grep -v "^\s*$" "$OUT/e2e_8b.log" | tail -6 | cut -c1-420
else echo "no llama-3.1-8b checkpoint"; fi
stamp done
