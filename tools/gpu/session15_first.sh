#!/usr/bin/env bash
# Session 15's first device job: is session 14's batch4 "graphs = eager" failure (bench/RESULTS.md, "Session 14 — closing
# call" and "audit of prefillPdl") prefillPdl, or the 12-row decode step itself? No model needed; ~300 s at most (queue with
# BUDGET 320). The lead runs it and tools/gpu/session14_closing.sh (the closing figures, not repeated here) in ONE batched
# call, this job FIRST, so that (a) meets the conditions of the failing run (a cold machine; its own empty cache dir anyway).
#   (a) the whole GPU suite in 3 processes on the defaults (prefillPdl off, prefillPlanCache on; empty kernel + GEMM timing
#       cache, LLMRT_CACHE_DIR=/tmp/s15-cache), and beside it, as a 4th process, tests/gpu/batch4_eager_diag.test.ts with
#       LLMRT_PREFILL_PDL=1 (the failing run's configuration, under the same load; the suite runs the diag file once more
#       on the defaults, in one of its groups)
#   (b) the diag test alone, twice, reusing (a)'s cache — so the GEMM picks timed under load: LLMRT_PREFILL_PDL=1, then =0;
#       then once more with the GEMM timing cache emptied (picks timed on an idle GPU)
#   (c) if time is left: the 3-process suite again with LLMRT_PREFILL_PDL=1 (a fresh cache dir if ≥ 125 s remain, else the
#       kernels kept and only the GEMM timing cache emptied; skipped under 60 s)
# Reading the output:
#   "group i: rc R" / "(fail) ..." / "N pass|fail" — gpu_suite_par's summary per suite run
#   "diag <where> <case> | prefill kv vs G: all = | decode0 logits: {G,E,...} cpu X [@i vs G Y] ... | decode0 kv vs G: ..."
#       — the diag test's line: KV caches after the prefill / decode 0 vs G's ("all =" bitwise; else per session the first
#       differing layer / block / sequence), sessions grouped by equal decode-0 logits bits (G graphs, E eager, E±pdl eager
#       with prefillPdl forced on / off, Gnt / Ent with gemmTune off), each group's rel L2 to the CPU session and its first
#       index differing from G's
#   "picks M12/M16: NxK a/b" — the GEMM timing cache's candidate index per linear at M 12 (eager) / 16 (the graph bucket);
#       each an index into its own M's heuristic list: compare one run's picks with another run's, not a with b
#   "verdict: ..." — where the difference first appears: after the PREFILL (KV / logits: a prefill race, prefillPdl's
#       suspect), or at decode 0 only (then: whether layer 0's new KV already differs, and whether the gemmTune-off pair
#       agrees — if it does while G / E differ, the per-M timed cuBLASLt picks of > 8-row decode steps are the cause)
#   Full logs in $OUT/*.log; timing_*.json are the GEMM timing caches after each phase.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
BUDGET=${BUDGET:-300}
DIAG=tests/gpu/batch4_eager_diag.test.ts
C=/tmp/s15-cache
rm -rf "$C" /tmp/s15-cache-c
export LLMRT_CACHE_DIR=$C
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
# diag_lines WHERE LOG...: the diag test's lines (KV fields "all =" unless some session's KV differs) and its failures.
diag_lines() {
  local where=$1
  shift
  grep -h "^batch4 diag" "$@" | sed -E "s/^batch4 diag /diag $where /" | cut -c1-1000
  grep -h "^(fail) batch4 diag" "$@" | cut -c1-200
}
# diag_alone NAME LIMIT WHERE [ENV=..]: the diag test alone in one process, its lines and assertion messages.
diag_alone() {
  local name=$1 lim=$2 where=$3
  shift 3
  diag "$name" "$lim" "$@"
  diag_lines "$where" "$OUT/$name.log"
  grep -h "AssertionError" "$OUT/$name.log" | cut -c1-200 | head -4
  echo "$where: $(tail -1 "$OUT/$name.log")"
}
timing() { cp "$C"/gemm/timing-*.json "$OUT/timing_$1.json" 2> /dev/null || echo "no timing cache ($1)"; }
diag() { # NAME LIMIT [ENV=..]: the diag test in one process
  local name=$1 lim=$2
  shift 2
  env "$@" timeout "$lim" bun test --timeout 600000 "$DIAG" > "$OUT/$name.log" 2>&1
  echo "rc $?" >> "$OUT/$name.log"
}

stamp "(a) GPU suite in 3 processes (defaults, empty cache) + the diag test with LLMRT_PREFILL_PDL=1 beside it"
diag diag_a4 140 LLMRT_PREFILL_PDL=1 &
p4=$!
gpu_suite_par suite_a 140 3
wait $p4
echo "4th process: $(tail -1 "$OUT/diag_a4.log")"
diag_lines "a:suite" "$OUT"/suite_a_*.log
diag_lines "a:4th,pdl1" "$OUT/diag_a4.log"
grep -h "AssertionError" "$OUT/diag_a4.log" | cut -c1-200 | head -4
timing a

stamp "(b) the diag test alone, the picks timed under (a)'s load: LLMRT_PREFILL_PDL=1, =0; then the timing cache emptied"
diag_alone diag_b1 45 b:pdl1 LLMRT_PREFILL_PDL=1
diag_alone diag_b0 45 b:pdl0 LLMRT_PREFILL_PDL=0
rm -rf "$C/gemm"
diag_alone diag_bt 45 b:retimed X=1
timing b

left=$((BUDGET - (SECONDS - _t0) - 5))
if [ "$left" -ge 125 ]; then
  export LLMRT_CACHE_DIR=/tmp/s15-cache-c C=/tmp/s15-cache-c
  stamp "(c) GPU suite in 3 processes, LLMRT_PREFILL_PDL=1, fresh cache (limit $left s)"
elif [ "$left" -ge 60 ]; then
  rm -rf "$C/gemm"
  stamp "(c) GPU suite in 3 processes, LLMRT_PREFILL_PDL=1, kernels cached, GEMM timing emptied (limit $left s)"
else
  stamp "(c) skipped: $left s left"
fi
if [ "$left" -ge 60 ]; then
  (export LLMRT_PREFILL_PDL=1 && gpu_suite_par suite_c "$left" 3)
  diag_lines "c:suite,pdl1" "$OUT"/suite_c_*.log
  timing c
fi
stamp done
