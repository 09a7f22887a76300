#!/usr/bin/env bash
# Session 17, issue 16 (helper prefill), round 1 (budget 150 s): llama-3.2-1b's 2048-token TTFT.
#   power — nvidia-smi's power limits and clocks (read only), then SM clock / power / throttle reasons sampled every 10 ms
#           through the whole TTFT run (tools/gpu/clock_phases.py lines them up with the bench's PHASE lines).
#   ttft  — TTFT 128 / 2048, one process, sessions taking turns (median of 15): default / graphs (prefillGraphs) / nopdl
#           (prefillPdl off; on by default since session 15) / default / graphs; logits vs default (bitwise expected), 1 re-run; --idle 150: every
#           variant's TTFT again with the GPU idle 150 ms before each step; --subsets 120: graph replays of the default
#           step's launches — all, the GEMMs only, the rest only, gate_up only, one gate_up, the attention only — each
#           ~1 s, so the clock log says what clock each part runs at alone and in the step; --phases 60: each variant's 60
#           steps as one phase (clock, mean power, mJ a step by variant).
#   tests — tests/gpu/prefill_batch_invariance.test.ts with LLMRT_PREFILL_GRAPHS=1, tests/gpu/prefill_graphs.test.ts.
#   hf    — bench/hf_bench.py latency: transformers (SDPA) TTFT 128 / 2048 of the same checkpoint, same job.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi -q -d POWER,CLOCK 2>&1 | grep -E "Power Limit|Power Draw|^ +(SM|Graphics|Memory) +:|Max Clocks|Applications" | sed 's/  */ /g' | head -16
stamp "1b TTFT 128 / 2048: default / graphs / nopdl / default / graphs, idle, subsets"
timeout 80 nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,clocks_throttle_reasons.active,total_energy_consumption --format=csv,noheader -lms 10 > "$OUT/smi.csv" 2>&1 &
smipid=$!
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 75 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 15 \
  --variants default,graphs,nopdl,default,graphs --check-runs 1 --idle 150 --subsets 120 --phases 60 > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
kill "$smipid" 2> /dev/null
grep -E "prompt (128|2048): [a-z0-9+]+ +TTFT|runs|differ|idle:|^subset|SUMMARY|rror" "$OUT/ttft_1b.log" | cut -c1-200
python3 tools/gpu/clock_phases.py "$OUT/smi.csv" "$OUT/ttft_1b.log" 2>&1 | head -40
left=$((120 - (SECONDS - _t0)))
stamp "GPU tests prefill_batch_invariance with LLMRT_PREFILL_GRAPHS=1, prefill_graphs ($left s left)"
[ "$left" -gt 10 ] && LLMRT_PREFILL_GRAPHS=1 timeout $((left < 25 ? left : 25)) bun test --timeout 600000 tests/gpu/prefill_batch_invariance.test.ts > "$OUT/tests_inv.log" 2>&1
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/tests_inv.log" | cut -c1-200 | head -8
left=$((120 - (SECONDS - _t0)))
[ "$left" -gt 10 ] && timeout $((left < 25 ? left : 25)) bun test --timeout 600000 tests/gpu/prefill_graphs.test.ts > "$OUT/tests.log" 2>&1
grep -E "^\(pass|^\(fail|differ|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/tests.log" | cut -c1-200 | head -8
left=$((142 - (SECONDS - _t0)))
stamp "transformers TTFT 128 / 2048 ($left s left)"
[ "$left" -gt 15 ] && timeout "$left" python3 bench/hf_bench.py latency --model "$M1" --prompt-lens 128,2048 --decode 0 > "$OUT/hf_1b.log" 2>&1
grep -o '"ttft_ms": {[^}]*}' "$OUT/hf_1b.log"; grep -iE "error" "$OUT/hf_1b.log" | tail -2 | cut -c1-200
stamp done
