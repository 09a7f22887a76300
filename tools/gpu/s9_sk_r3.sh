#!/usr/bin/env bash
# Session 9 (issue 16), helper sk, round 3: decode_attention_sk as it would be turned on — tensor cores with p·v as
# O^T = V^T P^T, DS_NS 2 (64 KB), DS_MINK 128 (r2's one-layer timing: each better or equal).
#   checks — decode_attention_sk.py --quick (default, DS_MINK 64)
#   e2e    — bench/decode_pdl.ts --sk, llama-3.1-8b and llama-3.2-1b, ctx 128…32768 (A decode_attention, B sk)
#   test   — tests/gpu/decode_sk.test.ts; tests/gpu/cuda_session.test.ts (vs transformers) with LLMRT_DECODE_SK=1
#   time   — one layer at batch 1: this default vs r2's (DS_NS 3, DS_MINK 256), DS_PLO 1, session 8's scalar sk
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "kernel checks (quick)"
timeout 11 python3 tools/cuda-kernel-check/decode_attention_sk.py --only checks --quick --out "$OUT/checks" > "$OUT/checks.log" 2>&1; echo "rc $?"
grep -E "FAIL|SUMMARY|Error|error" "$OUT/checks.log" | head -8 | cut -c1-260; grep -c "^  ok" "$OUT/checks.log"
grep -o "rel=[0-9.e+-]*" "$OUT/checks.log" | sort -t= -k2 -g | tail -1
stamp "llama-3.1-8b end to end: A / B (sk)"
timeout 22 bun bench/decode_pdl.ts --model $M8 --ctx 128,512,2048,8192,32768 --decode 16 --check 4 --sk > "$OUT/e2e_8b.log" 2>&1; echo "rc $?"
grep -E "graph|tok/s|copy|%|differ" "$OUT/e2e_8b.log" | head -8 | cut -c1-360
stamp "llama-3.2-1b end to end: A / B (sk)"
timeout 9 bun bench/decode_pdl.ts --model $M1 --ctx 128,512,2048,8192,32768 --decode 32 --check 4 --sk > "$OUT/e2e_1b.log" 2>&1; echo "rc $?"
grep -E "graph|tok/s|copy|%|differ" "$OUT/e2e_1b.log" | head -8 | cut -c1-360
stamp "GPU test: decode_sk"
timeout 9 bun test --timeout 300000 tests/gpu/decode_sk.test.ts > "$OUT/gputest.log" 2>&1; echo "rc $?"
grep -E "head dim|decode_attention|pass|fail|rror" "$OUT/gputest.log" | head -14 | cut -c1-300
stamp "cuda_session vs transformers with LLMRT_DECODE_SK=1"
LLMRT_DECODE_SK=1 timeout 12 bun test --timeout 600000 tests/gpu/cuda_session.test.ts > "$OUT/session_sk.log" 2>&1; echo "rc $?"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$" "$OUT/session_sk.log" | cut -c1-300 | head -12
left=$((67 - (SECONDS - _t0)))
[ "$left" -gt 6 ] || { stamp "no time left for the timing"; exit 0; }
stamp "kernel timing ($left s left)"
timeout "$left" python3 tools/cuda-kernel-check/decode_attention_sk.py --only time --no-old --ctx 128,512,2048,8192,32768 --models 8b,1b \
  --variants "new:;r2:DS_NS=3+DS_MINK=256;plo:DS_PLO=1;s8scalar:DS_MMA=0+DS_NS=3+DS_MINK=256" \
  --out "$OUT/time" > "$OUT/time.log" 2>&1; echo "rc $?"
grep -E "copy bandwidth|ctx|compiled|FAIL|Error" "$OUT/time.log" | head -24 | cut -c1-360
stamp done
