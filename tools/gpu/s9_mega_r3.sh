#!/usr/bin/env bash
# Session 9, issue 16 item 1 (helper mega), round 3 (budget 60 s, the last device round). r2: the persistent kernel with
# split attention checked (bitwise residual at 1 layer, GPU test rel 2.7e-3) and faster end to end at batch 1
# (1039 -> 1138 tok/s), slower in graph replay at 1k-4k keys. Now the attention keeps 2 K rows and 16 V rows in flight
# per thread (DP_ATT_ILP 2, DP_PV_UNROLL 16; r2's code is the ILP1 variant).
#   iso — decode_persistent.py: checks at 128 / 1000 / 4500 (+1024-key chunks), timings 1 / 16 layers; variants (16 layers):
#         r2's attention (ILP1), two / four-accumulator GEMV dots (ACC2, ACC4), and a variant attention (ATTKV, also
#         checked: one block per (kv head, key split), up to 16 splits, K/V read once for the 4 q heads, last split merges).
#   e2e — bench/decode_pdl.ts --persistent on llama-3.2-1b at 128..4096 keys (both sessions batchInvariant off: the
#         persistent path now requires it, its sums round unlike the batched kernels).
#   gpu — tests/gpu/persistent_decode.test.ts.
set -uo pipefail
OUT=${OUT:-/tmp/mega-out}
mkdir -p "$OUT"
s() { echo "== [$SECONDS s] $*"; }
s "isolated persistent kernel vs per-layer kernels"
timeout 28 python3 tools/cuda-kernel-check/decode_persistent.py --out "$OUT" --ctx 128,1000,4500 --nslot 5 --budget 24 --no-diag --check-variant DP_ATT_KV=1 \
  --variants "ILP1:DP_ATT_ILP=1,DP_PV_UNROLL=8;ACC2:DP_ACC=2;ACC4:DP_ACC=4;ATTKV:DP_ATT_KV=1" > "$OUT/iso.log" 2>&1
echo "rc=$?"
grep -E "ok  |FAIL|copy|pos |SUMMARY|rror|budget" "$OUT/iso.log" | cut -c1-250 | head -50
s "e2e: decode_pdl --persistent"
LLMRT_BENCH_JSON=$OUT/e2e.json timeout 16 bun bench/decode_pdl.ts --model /tmp/hfmodels/llama-3.2-1b --ctx 128,512,1024,2048,4096 --decode 128 --check 8 --persistent > "$OUT/e2e.log" 2>&1
echo "rc=$?"
grep -E "copy|A |B |vs|rror" "$OUT/e2e.log" | cut -c1-400
left=$((58 - SECONDS))
if [ "$left" -ge 8 ]; then
  s "gpu test: persistent_decode (timeout $left s)"
  timeout "$left" bun test --timeout 600000 tests/gpu/persistent_decode.test.ts > "$OUT/gpu_test.log" 2>&1
  echo "rc=$?"
  grep -E "^\(pass|^\(fail|^\(skip|persistent vs|rror|^ *[0-9]+ (pass|fail)" "$OUT/gpu_test.log" | cut -c1-240 | head -20
fi
s done
