#!/usr/bin/env bash
# Session 12, helper verify, round 2: the clean-up on the GPU. The CUDA refactors (kernels/mma_tile.cuh shared by
# decode_attention_batch.cu / decode_attention_batch4.cu; flash_prefill_wg.cu's one entry macro) compile to the same
# CUBINs as main's with nvcc 13.0 (tools/cuda-kernel-check/same_cubin.sh); here NVRTC builds them and their GPU tests
# run: batch_attention2 / batch_attention4 (now on tests/gpu/batch_attention_setup.ts), flash_prefill and
# fp8_prefill_switches (flash_prefill_wg plain and _q8), and the GEMV tests on tests/gpu/gemv_timing.ts (quant_cuda,
# lowbit_cuda, nvfp4_mma, fp8_cuda); r1's 130-sequence batch4w case again, now comparing its graphs vs eager steps with
# batch2w's (r1: batch4's differed; whether batch2's do too). Five bun processes at once on the one GPU, each with its own timeout.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp start
run() { # NAME ARGS... : one bun test process in the background
  local name=$1
  shift
  (timeout 42 bun test --timeout 600000 "$@" > "$OUT/$name.log" 2>&1; echo "rc $?" >> "$OUT/$name.log") &
}
run ba4_wide tests/gpu/batch_attention4.test.ts -t "130 sequences"
run ba4_hd128 tests/gpu/batch_attention4.test.ts -t "hd128 G4, (bf16|FP8) cache\)"
run ba4_hd64_ba2_hd128 tests/gpu/batch_attention4.test.ts tests/gpu/batch_attention2.test.ts -t "hd64 G12|hd64 G2|hd128 G2"
run ba2_hd64_flash tests/gpu/batch_attention2.test.ts tests/gpu/flash_prefill.test.ts tests/gpu/fp8_prefill_switches.test.ts -t "hd64 G4|flash|prefill"
run gemv tests/quant_cuda.test.ts tests/gpu/lowbit_cuda.test.ts tests/gpu/nvfp4_mma.test.ts tests/gpu/fp8_cuda.test.ts
wait
stamp "all done"
for f in ba4_wide ba4_hd128 ba4_hd64_ba2_hd128 ba2_hd64_flash gemv; do
  echo "-- $f: $(tail -1 "$OUT/$f.log")"
  grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|^batch[24] |copy ceiling" "$OUT/$f.log" | cut -c1-300 | head -14
done
stamp done
