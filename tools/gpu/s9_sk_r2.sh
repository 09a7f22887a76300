#!/usr/bin/env bash
# Session 9 (issue 16), helper sk, round 2: decode_attention_sk on tensor cores (DS_MMA 1, r1: wins at every context).
#   checks — decode_attention_sk.py --quick: default, DS_MMA 2 (+ DS_MINK 64), DS_MMA 2 + DS_PLO 1
#   e2e    — bench/decode_pdl.ts --sk llama-3.1-8b ctx 128…32768 (A decode_attention, B sk)
#   test   — tests/gpu/decode_sk.test.ts (bitwise batch invariance alone / 8-seq graphs / eager; vs decode_attention)
#   time   — one layer at batch 1 (no decode_attention): DS_MMA 1 / 2, DS_PLO, DS_NS 2 / 4, DS_MINK 128
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "kernel checks (quick)"
timeout 13 python3 tools/cuda-kernel-check/decode_attention_sk.py --only checks --quick --check-defines ";DS_MMA=2+DS_MINK=64;DS_PLO=1+DS_MMA=2" \
  --out "$OUT/checks" > "$OUT/checks.log" 2>&1; echo "rc $?"
grep -E "FAIL|SUMMARY|Error|error" "$OUT/checks.log" | head -8 | cut -c1-260; grep -c "^  ok" "$OUT/checks.log"
grep -o "rel=[0-9.e+-]*" "$OUT/checks.log" | sort -t= -k2 -g | tail -1
stamp "llama-3.1-8b end to end: A / B (sk)"
timeout 22 bun bench/decode_pdl.ts --model $M8 --ctx 128,512,2048,8192,32768 --decode 16 --check 4 --sk > "$OUT/e2e_8b.log" 2>&1; echo "rc $?"
grep -E "graph|tok/s|copy|%|differ" "$OUT/e2e_8b.log" | head -8 | cut -c1-360
stamp "GPU test: decode_sk"
timeout 18 bun test --timeout 300000 tests/gpu/decode_sk.test.ts > "$OUT/gputest.log" 2>&1; echo "rc $?"
grep -E "head dim|decode_attention|pass|fail|rror" "$OUT/gputest.log" | head -14 | cut -c1-300
left=$((67 - (SECONDS - _t0)))
stamp "kernel timing ($left s left)"
timeout "$left" python3 tools/cuda-kernel-check/decode_attention_sk.py --only time --no-old --ctx 512,2048,32768 --models 8b,1b \
  --variants "mma:;mma2:DS_MMA=2;mma2plo:DS_MMA=2+DS_PLO=1;mmaplo:DS_PLO=1;mma2NS4:DS_MMA=2+DS_NS=4;mma2NS2:DS_MMA=2+DS_NS=2;mma2MINK128:DS_MMA=2+DS_MINK=128" \
  --out "$OUT/time" > "$OUT/time.log" 2>&1; echo "rc $?"
grep -E "copy bandwidth|ctx|compiled|FAIL|Error" "$OUT/time.log" | head -24 | cut -c1-360
stamp done
