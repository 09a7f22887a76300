#!/usr/bin/env bash
# Session 12, helper verify, round 1: main as merged after session 11's last device call, on the GPU.
#   A  tests/gpu/batch_attention4.test.ts (decode_attention_batch4.cu: literal launch bounds of batch4w, QK2 knob dropped;
#      + a new 130-sequence case that runs batch4w beside batch2w), split by head dim over two processes
#   B  tests/quant_cuda.test.ts (quant_gemv.cu without the fastd entry points), tests/gpu/nvfp4_mma.test.ts (k32 build
#      parameters), tests/gpu/speculative.test.ts (needs models/kjv-llama-draft in the send)
#   C  bench/batch_divergence.ts on llama-3.2-1b: bf16 batch2 vs batch4 (default) against the float32 engine, one process
# All three at once on the one GPU (each its own timeout).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp start
ls models/kjv-llama-draft/config.json > /dev/null 2>&1 && echo "kjv-llama-draft present" || echo "kjv-llama-draft MISSING from the send"
(timeout 42 bun test --timeout 600000 tests/gpu/batch_attention4.test.ts -t hd128 > "$OUT/ba4_hd128.log" 2>&1; echo "rc $?" >> "$OUT/ba4_hd128.log") &
p1=$!
(timeout 42 bun test --timeout 600000 tests/gpu/batch_attention4.test.ts -t hd64 > "$OUT/ba4_hd64.log" 2>&1; echo "rc $?" >> "$OUT/ba4_hd64.log") &
p2=$!
(timeout 42 bun test --timeout 600000 tests/quant_cuda.test.ts tests/gpu/nvfp4_mma.test.ts tests/gpu/speculative.test.ts > "$OUT/quant_nvfp4_spec.log" 2>&1; echo "rc $?" >> "$OUT/quant_nvfp4_spec.log") &
p3=$!
(LLMRT_BENCH_JSON="$OUT/divergence_1b.json" timeout 43 bun bench/batch_divergence.ts --model "$M1" --requests 64 --input 128 --steps 32 --kernels batch2,batch4 > "$OUT/divergence_1b.log" 2>&1; echo "rc $?" >> "$OUT/divergence_1b.log") &
p4=$!
wait $p1 $p2 $p3 $p4
stamp "all done"
for f in ba4_hd128 ba4_hd64 quant_nvfp4_spec; do
  echo "-- $f: $(tail -1 "$OUT/$f.log")"
  grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|^batch4 " "$OUT/$f.log" | cut -c1-400 | head -12
done
echo "-- divergence: $(tail -1 "$OUT/divergence_1b.log")"
grep -v -i warn "$OUT/divergence_1b.log" | head -30 | cut -c1-300
stamp done
