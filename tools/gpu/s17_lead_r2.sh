#!/usr/bin/env bash
# Session 17, lead, round 2 (budget 70 s): llama-3.2-1b batch-1 decode — what a step costs outside its CUDA graph
# (bench/step_loop.ts: graph back to back / synced / overlapped / overlapped with the host's token, engines of maxSeqLen
# 320 and 2112 — latency.ts builds 2112 for --prompt-lens 128,2048; the stream's small copies alone; r3: the graph
# replayed with each of the copies launch() enqueues beside it, CudaSession.timeDecodeStepCopies).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "step loop 1B"
LLMRT_BENCH_JSON=$OUT/step_loop_1b.json timeout 60 bun bench/step_loop.ts --model "$M1" --max-seq-lens 320,2112 --decode 128 --reps 3 > "$OUT/step_loop_1b.log" 2>&1
echo "rc $?"
grep -E "maxSeqLen|µs each|ceiling|rror|copies" "$OUT/step_loop_1b.log" | cut -c1-400
stamp done
