#!/usr/bin/env bash
# Session 9, issue 16 item 1 (helper mega), round 1 (budget 80 s): is a persistent decode-layer kernel faster than
# the engine's per-layer kernels for llama-3.2-1b at batch 1?
#   iso — tools/cuda-kernel-check/decode_persistent.py: kernels/decode_persistent.cu (one launch, TMA weight ring,
#         counter-synchronised phases) vs the engine's 5 launches per layer (no PDL in this harness), random 1B-shaped
#         weights: residual / cache / qkv checks at 1 and 16 layers, then graph timings (1 layer rotated, 16 layers) at
#         positions 128 and 1000, ring of 5, 6 and 3 slots, copy bandwidth in the same process.
#   e2e — what is left: bench/decode_pdl.ts --baseline (the engine's decode graph with PDL, same GPU, same job).
set -uo pipefail
OUT=${OUT:-/tmp/mega-out}
mkdir -p "$OUT"
s() { echo "== [$SECONDS s] $*"; }
s "isolated persistent kernel vs per-layer kernels"
timeout 62 python3 tools/cuda-kernel-check/decode_persistent.py --out "$OUT" --ctx 128,1000 --nslot 5,6,3 --budget 50 > "$OUT/iso.log" 2>&1
echo "rc=$?"
grep -vE "^\s*$" "$OUT/iso.log" | grep -E "GPU|ok  |FAIL|copy|pos |scale|SUMMARY|rror|setup|checks done" | cut -c1-240 | head -40
left=$((78 - SECONDS))
if [ "$left" -ge 22 ]; then
  s "engine decode graph (PDL) for scale, timeout $left s"
  timeout "$left" bun bench/decode_pdl.ts --model /tmp/hfmodels/llama-3.2-1b --baseline --ctx 128,1024 --decode 64 --check 2 > "$OUT/pdl.log" 2>&1
  echo "rc=$?"
  grep -E "copy|baseline|rror" "$OUT/pdl.log" | cut -c1-240
fi
s done
