#!/usr/bin/env bash
# Session 17, issue 16 (helper prefill), closing ride (budget 150 s): llama-3.2-1b.
#   ttft  — TTFT 128 / 2048, one process, sessions taking turns (median of 21): default / graphs (prefillGraphs) / default /
#           graphs; logits vs default (bitwise expected), 1 re-run; --idle 150 (each step after 150 ms idle); SM clock /
#           throttle reasons sampled every 10 ms (tools/gpu/clock_phases.py: the clock of the TTFT reps and idle steps).
#   tests — with LLMRT_PREFILL_GRAPHS=1 (every eager prefill / mixed step of a seen shape replays its graph):
#           tests/gpu/flash_prefill.test.ts, graph.test.ts, fp8_prefill_switches.test.ts, batch4_eager_diag.test.ts; and
#           tests/gpu/prefill_graphs.test.ts as it is (graphs vs the eager default, bitwise).
#   hf    — transformers (SDPA) TTFT 128 / 2048 / 128 (the second 128 is the one kept: the first is its warm-up).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "1b TTFT 128 / 2048: default / graphs / default / graphs, idle"
timeout 60 nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,clocks_throttle_reasons.active --format=csv,noheader -lms 10 > "$OUT/smi.csv" 2>&1 &
smipid=$!
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 55 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 21 \
  --variants default,graphs,default,graphs --check-runs 1 --idle 150 > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
kill "$smipid" 2> /dev/null
grep -E "prompt (128|2048): [a-z0-9+]+ +TTFT|runs|differ|idle:|SUMMARY|rror" "$OUT/ttft_1b.log" | cut -c1-220
python3 tools/gpu/clock_phases.py "$OUT/smi.csv" "$OUT/ttft_1b.log" 2>&1 | cut -c1-200
left=$((118 - (SECONDS - _t0)))
stamp "GPU tests with LLMRT_PREFILL_GRAPHS=1 ($left s left)"
[ "$left" -gt 10 ] && LLMRT_PREFILL_GRAPHS=1 timeout "$left" bun test --timeout 600000 tests/gpu/flash_prefill.test.ts tests/gpu/graph.test.ts \
  tests/gpu/fp8_prefill_switches.test.ts tests/gpu/batch4_eager_diag.test.ts > "$OUT/tests_graphs.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/tests_graphs.log" | cut -c1-220 | head -12
left=$((128 - (SECONDS - _t0)))
[ "$left" -gt 8 ] && timeout "$left" bun test --timeout 600000 tests/gpu/prefill_graphs.test.ts > "$OUT/tests.log" 2>&1
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/tests.log" | cut -c1-200 | head -6
left=$((145 - (SECONDS - _t0)))
stamp "transformers TTFT 128 / 2048 ($left s left)"
[ "$left" -gt 15 ] && timeout "$left" python3 bench/hf_bench.py latency --model "$M1" --prompt-lens 128,2048,128 --decode 0 > "$OUT/hf_1b.log" 2>&1
grep -o '"ttft_ms": {[^}]*}' "$OUT/hf_1b.log"; grep -iE "error" "$OUT/hf_1b.log" | tail -2 | cut -c1-200
stamp done
