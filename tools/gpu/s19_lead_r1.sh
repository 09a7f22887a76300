#!/usr/bin/env bash
# Session 19, lead, round 1 (budget ~220 s; llama-3.2-1b). Two new switches, each A/B'd in one process:
#   zeroCopyStaging (stage_in / stage_out kernels instead of the step's three stream copies) and batchDecodePdl (decode steps
#   of > 8 sequences: the norms / SiLU·mul / sampler after cuBLASLt GEMMs with programmatic dependent launch).
#   1. GPU tests: overlap (launch-ahead chains; zeroCopyStaging with graphs and eager), nvrtc_kernels, decode_sk, graph;
#      batch_attention4 + eager_bucket_gemm with LLMRT_BATCH_DECODE_PDL=1 (graphs = eager bitwise)
#   2. bench/step_loop.ts --zero-copy ab: 1B, 5 reps, maxSeqLen 320
#   3. decode_breakdown 1B 64 rows at 192 keys: default / batchDecodePdl (one process)
#   4. 1B 64 x (128,128): default / zeroCopyStaging / batchDecodePdl, ids compared
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
gpu_suite lead_tests 80 tests/gpu/overlap.test.ts tests/gpu/nvrtc_kernels.test.ts tests/gpu/decode_sk.test.ts tests/gpu/graph.test.ts
LLMRT_BATCH_DECODE_PDL=1 gpu_suite lead_pdl_tests 60 tests/gpu/batch_attention4.test.ts tests/gpu/eager_bucket_gemm.test.ts
stamp "step_loop 1B, zeroCopyStaging off / on"
timeout 60 bun bench/step_loop.ts --model "$M1" --max-seq-lens 320 --reps 5 --zero-copy ab > "$OUT/loop_1b.log" 2>&1
echo "rc $?"; grep -E "maxSeqLen|copy ceiling|rror" "$OUT/loop_1b.log" | cut -c1-420
stamp "decode_breakdown 1B 64 rows: default / batchDecodePdl"
timeout 55 bun bench/decode_breakdown.ts --model "$M1" --rows 64 --ctx 192 --opts '{}' --opts2 '{"batchDecodePdl":true}' > "$OUT/bd_1b.log" 2>&1
echo "rc $?"; grep -E "whole step|graph|session|rror" "$OUT/bd_1b.log" | head -12 | cut -c1-300
thr a "$M1" 64 22
LLMRT_ZERO_COPY_STAGING=1 thr z "$M1" 64 22
LLMRT_BATCH_DECODE_PDL=1 thr p "$M1" 64 22
thr_summary a z p
same_ids a z
same_ids a p
stamp done
