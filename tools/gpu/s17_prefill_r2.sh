#!/usr/bin/env bash
# Session 17, issue 16 (helper prefill), round 2 (budget 150 s): llama-3.2-1b's 2048-token TTFT under the power cap.
#   ttft  — TTFT 128 / 2048, one process, sessions taking turns (median of 15): default / sustain (gemmTuneSustained, new:
#           the 2048-row bucket's GEMM algorithms re-timed back to back, the fastest under the power cap; the bench prints
#           each shape's short vs back-to-back times) / graphs (prefillGraphs) / sustain+graphs / default; logits vs default
#           (bitwise expected), 1 re-run; --idle 150 (each step after 150 ms idle); --phases 60 (each variant's 60 steps as a
#           phase) with SM clock / power / throttle reasons sampled every 10 ms (tools/gpu/clock_phases.py).
#   tests — tests/gpu/gemm.test.ts -t sustained (the back-to-back pick's rows bitwise equal to the pinned algorithm's).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "1b TTFT 128 / 2048: default / sustain / graphs / sustain+graphs / default, idle, phases"
timeout 90 nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,clocks_throttle_reasons.active --format=csv,noheader -lms 10 > "$OUT/smi.csv" 2>&1 &
smipid=$!
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 85 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 15 \
  --variants default,sustain,graphs,sustain+graphs,default --check-runs 1 --idle 150 --phases 60 > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
kill "$smipid" 2> /dev/null
grep -E "prompt (128|2048): [a-z0-9+]+ +TTFT|runs|differ|idle:|sustained tuning|SUMMARY|rror" "$OUT/ttft_1b.log" | cut -c1-230
python3 tools/gpu/clock_phases.py "$OUT/smi.csv" "$OUT/ttft_1b.log" 2>&1 | grep -E "clock log|ttft|p2048|idle2048" | cut -c1-200
left=$((140 - (SECONDS - _t0)))
stamp "GPU test gemm -t sustained ($left s left)"
[ "$left" -gt 10 ] && timeout "$left" bun test --timeout 600000 tests/gpu/gemm.test.ts -t sustained > "$OUT/tests.log" 2>&1
grep -E "^\(pass|^\(fail|differ|bucket|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/tests.log" | cut -c1-230 | head -14
stamp done
