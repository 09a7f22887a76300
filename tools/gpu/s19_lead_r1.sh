#!/usr/bin/env bash
# Session 19, lead, round 1 (budget ~220 s; llama-3.2-1b). Two new switches, each A/B'd in one process:
#   zeroCopyStaging (stage_in / stage_out kernels instead of the step's three stream copies) and batchDecodePdl (decode steps
#   of > 8 sequences: the norms / SiLU·mul / sampler after cuBLASLt GEMMs with programmatic dependent launch).
#   1. GPU tests: overlap (launch-ahead chains; zeroCopyStaging with graphs and eager), nvrtc_kernels, decode_sk, graph;
#      batch_attention4 + eager_bucket_gemm with LLMRT_BATCH_DECODE_PDL=1 (graphs = eager bitwise)
#   2. bench/step_loop.ts --zero-copy ab: 1B, 5 reps, maxSeqLen 320
#   3. 1B 64 x (128,128): default (then its graph replays of 16- and 64-row steps at 192 keys: default / batchDecodePdl /
#      zeroCopyStaging in turn) / zeroCopyStaging / batchDecodePdl, ids compared
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
gpu_suite lead_tests 80 tests/gpu/overlap.test.ts tests/gpu/nvrtc_kernels.test.ts tests/gpu/decode_sk.test.ts tests/gpu/graph.test.ts
LLMRT_BATCH_DECODE_PDL=1 gpu_suite lead_pdl_tests 60 tests/gpu/batch_attention4.test.ts tests/gpu/eager_bucket_gemm.test.ts
stamp "step_loop 1B, zeroCopyStaging off / on"
timeout 60 bun bench/step_loop.ts --model "$M1" --max-seq-lens 320 --reps 5 --zero-copy ab > "$OUT/loop_1b.log" 2>&1
echo "rc $?"; grep -E "maxSeqLen|copy ceiling|rror" "$OUT/loop_1b.log" | cut -c1-420
thr a "$M1" 64 45 --ab-rows 16,64 --ab-opts '{"pdl":{"batchDecodePdl":true},"zero":{"zeroCopyStaging":true}}'
grep -A3 "A/B graph replay" "$OUT/t_a.log" | cut -c1-200
LLMRT_ZERO_COPY_STAGING=1 thr z "$M1" 64 22
LLMRT_BATCH_DECODE_PDL=1 thr p "$M1" 64 22
thr_summary a z p
same_ids a z
same_ids a p
stamp done
