#!/usr/bin/env bash
# Session 19, lead, round 1 (budget ~230 s; llama-3.2-1b, llama-3.1-8b): zeroCopyStaging (stage_in / stage_out kernels
# instead of the step's three stream copies), same process A/B.
#   1. GPU tests: overlap (launch-ahead chains; zeroCopyStaging with graphs and eager), nvrtc_kernels, decode_sk, graph
#   2. bench/step_loop.ts --zero-copy ab: 1B (5 reps) and 8B (3 reps), maxSeqLen 320: graph / synced / overlapped µs a
#      step, each session's copy timings (graph + upload / forward / download / all / zeroCopy), greedy ids compared
#   3. 1B 64 x (128,128): default / zeroCopyStaging, ids compared
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
gpu_suite lead_tests 80 tests/gpu/overlap.test.ts tests/gpu/nvrtc_kernels.test.ts tests/gpu/decode_sk.test.ts tests/gpu/graph.test.ts
stamp "step_loop 1B, zeroCopyStaging off / on"
timeout 60 bun bench/step_loop.ts --model "$M1" --max-seq-lens 320 --reps 5 --zero-copy ab > "$OUT/loop_1b.log" 2>&1
echo "rc $?"; grep -E "maxSeqLen|copy ceiling|rror" "$OUT/loop_1b.log" | cut -c1-420
stamp "step_loop 8B, zeroCopyStaging off / on"
timeout 80 bun bench/step_loop.ts --model "$M8" --max-seq-lens 320 --reps 3 --zero-copy ab > "$OUT/loop_8b.log" 2>&1
echo "rc $?"; grep -E "maxSeqLen|copy ceiling|rror" "$OUT/loop_8b.log" | cut -c1-420
thr a "$M1" 64 25
LLMRT_ZERO_COPY_STAGING=1 thr z "$M1" 64 25
thr_summary a z
same_ids a z
stamp done
