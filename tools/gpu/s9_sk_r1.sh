#!/usr/bin/env bash
# Session 9 (issue 16), helper sk, round 1: decode_attention_sk with q·k / p·v on tensor cores (DS_MMA 1).
#   checks — tools/cuda-kernel-check/decode_attention_sk.py --quick (float64, cache bits, batch invariance)
#   time   — one layer at batch 1, 8B and 1B, ctx 512…32768: decode_attention vs sk mma / scalar / stages / DS_MINK
#   e2e    — bench/decode_pdl.ts --sk on llama-3.1-8b (A decode_attention, B sk), then 1B if time is left
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "kernel checks (quick)"
timeout 16 python3 tools/cuda-kernel-check/decode_attention_sk.py --only checks --quick --out "$OUT/checks" > "$OUT/checks.log" 2>&1; echo "rc $?"
grep -E "FAIL|SUMMARY|Error|error" "$OUT/checks.log" | head -8 | cut -c1-260; grep -c "^  ok" "$OUT/checks.log"
stamp "kernel timing"
timeout 24 python3 tools/cuda-kernel-check/decode_attention_sk.py --only time --ctx 512,2048,8192,32768 --models 8b,1b \
  --variants "mma:;scalar:DS_MMA=0;mmaNS2:DS_NS=2;mmaNS4:DS_NS=4;mmaMINK128:DS_MINK=128;mma2:DS_MMA=2" --out "$OUT/time" > "$OUT/time.log" 2>&1; echo "rc $?"
grep -E "copy bandwidth|ctx|FAIL|Error" "$OUT/time.log" | head -12 | cut -c1-330
stamp "llama-3.1-8b end to end: A / B (sk mma)"
timeout 24 bun bench/decode_pdl.ts --model $M8 --ctx 512,2048,8192,32768 --decode 16 --check 4 --sk > "$OUT/e2e_8b.log" 2>&1; echo "rc $?"
grep -E "graph|tok/s|copy|%|differ" "$OUT/e2e_8b.log" | head -8 | cut -c1-330
left=$((66 - (SECONDS - _t0)))
if [ "$left" -gt 8 ]; then
  stamp "llama-3.2-1b end to end: A / B ($left s left)"
  timeout "$left" bun bench/decode_pdl.ts --model $M1 --ctx 128,512,2048,8192,32768 --decode 32 --check 4 --sk > "$OUT/e2e_1b.log" 2>&1; echo "rc $?"
  grep -E "graph|tok/s|copy|%|differ" "$OUT/e2e_1b.log" | head -8 | cut -c1-330
fi
stamp done
