#!/usr/bin/env bash
# Session 9, issue 16 item 1 (helper mega), round 1 (budget 80 s): is a persistent decode-layer kernel faster than
# the engine's per-layer kernels for llama-3.2-1b at batch 1?
#   iso — tools/cuda-kernel-check/decode_persistent.py: kernels/decode_persistent.cu (one launch, TMA weight ring,
#         counter-synchronised phases) vs the engine's 5 launches per layer (no PDL in this harness), random 1B-shaped
#         weights: residual / cache / qkv checks at 1 and 16 layers, then graph timings (1 layer rotated, 16 layers) at
#         positions 128 and 1000, ring of 5, 6 and 3 slots, a no-wait diagnostic, copy bandwidth in the same process.
#   gpu — what is left: tests/gpu/persistent_decode.test.ts (the engine with persistentDecode vs without: logits).
set -uo pipefail
OUT=${OUT:-/tmp/mega-out}
mkdir -p "$OUT"
s() { echo "== [$SECONDS s] $*"; }
s "isolated persistent kernel vs per-layer kernels"
timeout 46 python3 tools/cuda-kernel-check/decode_persistent.py --out "$OUT" --ctx 128,1000 --nslot 5,6,3 --budget 38 > "$OUT/iso.log" 2>&1
echo "rc=$?"
grep -E "GPU|ok  |FAIL|copy|pos |scale|SUMMARY|rror|setup|checks done|budget" "$OUT/iso.log" | cut -c1-240 | head -40
left=$((78 - SECONDS))
if [ "$left" -ge 15 ]; then
  s "gpu test: persistent_decode (timeout $left s)"
  timeout "$left" bun test --timeout 600000 tests/gpu/persistent_decode.test.ts > "$OUT/gpu_test.log" 2>&1
  echo "rc=$?"
  grep -E "^\(pass|^\(fail|^\(skip|persistent vs|rror|^ *[0-9]+ (pass|fail)" "$OUT/gpu_test.log" | cut -c1-240 | head -20
fi
s done
