#!/usr/bin/env bash
# Session 9, issue 16 item 1 (helper mega), round 2 (budget 80 s). r1: the persistent kernel (one block per SM, TMA weight
# ring) beat the per-layer kernels at 128 keys (44.5 vs 55.0 µs a layer, no PDL) and lost at 1000 (65.3 vs 58.4: one
# attention block per q head). Now attention splits keys over up to 4 blocks a head (merged in the o_proj prologue) and
# gate_up / down combine once per phase instead of a barrier per chunk.
#   iso — decode_persistent.py: checks at positions 128 / 300 / 1000 / 4500 (1, 2, 4, 4 splits; 1024-key chunks), timings;
#         variants: the producer pulling 4 / 8 / 16 chunks ahead into L2 (DP_PF), 64-key attention splits (DP_SPLITK).
#   e2e — bench/decode_pdl.ts --persistent on llama-3.2-1b: default fused launches (PDL) vs persistentDecode, same process.
#   gpu — tests/gpu/persistent_decode.test.ts (engine logits with vs without the switch, random 1B-shaped layers).
set -uo pipefail
OUT=${OUT:-/tmp/mega-out}
mkdir -p "$OUT"
s() { echo "== [$SECONDS s] $*"; }
s "isolated persistent kernel vs per-layer kernels"
timeout 36 python3 tools/cuda-kernel-check/decode_persistent.py --out "$OUT" --ctx 128,1000,300,4500 --nslot 5 --budget 30 --variants "PF4:DP_PF=4;PF8:DP_PF=8;PF16:DP_PF=16;SPLITK64:DP_SPLITK=64" > "$OUT/iso.log" 2>&1
echo "rc=$?"
grep -E "ok  |FAIL|copy|pos |SUMMARY|rror|budget" "$OUT/iso.log" | cut -c1-250 | head -40
s "e2e: decode_pdl --persistent"
LLMRT_BENCH_JSON=$OUT/e2e.json timeout 22 bun bench/decode_pdl.ts --model /tmp/hfmodels/llama-3.2-1b --ctx 128,1024,4096 --decode 64 --check 8 --persistent > "$OUT/e2e.log" 2>&1
echo "rc=$?"
grep -E "copy|A |B |vs|rror" "$OUT/e2e.log" | cut -c1-330
left=$((78 - SECONDS))
if [ "$left" -ge 10 ]; then
  s "gpu test: persistent_decode (timeout $left s)"
  timeout "$left" bun test --timeout 600000 tests/gpu/persistent_decode.test.ts > "$OUT/gpu_test.log" 2>&1
  echo "rc=$?"
  grep -E "^\(pass|^\(fail|^\(skip|persistent vs|rror|^ *[0-9]+ (pass|fail)" "$OUT/gpu_test.log" | cut -c1-240 | head -20
fi
s done
