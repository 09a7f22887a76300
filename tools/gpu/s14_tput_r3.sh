#!/usr/bin/env bash
# Session 14 (issue 16 item 3), helper tput, round 3 if one runs (budget 40 s; diagnosis only, no switch). llama-3.2-1b bf16
# 64 x (128,128). r1 / r2: the profiled default run lost ~5-7 ms twice, at steps 30-31 (inside the step: launch + wait
# 7.3 ms) and before step 110-111 (5.2-5.6 ms between steps), in both jobs; JSC's GC log showed only 3 collections in the
# main VM over the whole process (pauses <= 5.5 ms), so not one a run.
#   1. the host alone (no GPU): event-loop and busy-loop gaps (tools/gpu/s14_tput_probe.ts)
#   2. two default runs (--reps 3 --profile-steps), steps > 2 ms or > 0.5 ms between printed: the same steps again?
#   3. BUN_JSC_useConcurrentJIT=0 (JIT on the main thread: if the stalls are compiled code being installed, they move)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stalls() {
  python3 - "$OUT/t_$1.json" << 'PY'
import json, sys
try:
    s = json.load(open(sys.argv[1]))["phases"]["steps"]
    slow = [(i, round(x[2], 2), round(x[3], 2), round(x[4], 2)) for i, x in enumerate(s) if i > 0 and (x[2] > 2 or x[4] > 0.5)]
    print(f"  steps {len(s)}; > 2 ms or > 0.5 ms between (step, step ms, run ms, between ms): {slow}")
except Exception as e:
    print("  stalls:", e)
PY
}
stamp "host probe"
timeout 6 bun tools/gpu/s14_tput_probe.ts 2>&1 | tail -6
for n in a b; do
  thr d$n $M1 64 7 --reps 3 --profile-steps
  grep -E "runs:|outside the steps" "$OUT/t_d$n.log" | cut -c1-200
  stalls d$n
done
(export BUN_JSC_useConcurrentJIT=0; thr nojit $M1 64 8 --reps 3 --profile-steps)
grep -E "runs:|outside the steps" "$OUT/t_nojit.log" | cut -c1-200
stalls nojit
thr_summary da db nojit
stamp done
