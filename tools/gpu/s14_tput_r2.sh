#!/usr/bin/env bash
# Session 14 (issue 16 item 3), helper tput, round 2 (budget 45 s). llama-3.2-1b bf16 64 x (128,128).
# r1: batchAttention4Ring's deeper rings lost (2 warps x 4 stages 41.9k / 41.7k, x 5 stages 41.3k vs default 42.3k / 43.1k);
# 4 warps x 2 stages 43.4k / 43.2k (other bits) — inside the spread. The profiled default run lost ~12 ms to two ~6-ms host
# stalls (step 30's launch + wait 7.3 ms; 5.6 ms between steps 109 and 110) against ~181 ms of GPU time: garbage collection?
#   1. default with BUN_JSC_logGC=1 (JSC's GC log: each cycle's pauses), --profile-steps: GC cycles and pauses vs the stalls
#   2. executorMode proxy (the executor and its session in a worker, another heap) vs inprocess, alternating, --reps 5
#   3. 4-warp batch4x: end to end once more, and the 64-row graph A/B in one process (graph replay, logits compared)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
K=decode_attention_batch4x_bf16_hd64
stalls() {
  python3 - "$OUT/t_$1.json" << 'PY'
import json, sys
try:
    s = json.load(open(sys.argv[1]))["phases"]["steps"]
    slow = [(i, round(x[2], 2), round(x[4], 2)) for i, x in enumerate(s) if i > 0 and (x[2] > 2 or x[4] > 0.5)]
    print(f"steps {len(s)}; > 2 ms or > 0.5 ms between (step, ms, between ms): {slow}")
except Exception as e:
    print("stalls:", e)
PY
}
(export BUN_JSC_logGC=1; thr gc $M1 64 8 --reps 5 --profile-steps)
grep -E "runs:|outside the steps" "$OUT/t_gc.log" | cut -c1-200
stalls gc
python3 - "$OUT/t_gc.log" << 'PY'
import re, sys
t = open(sys.argv[1], errors="replace").read()
cyc = [(m.group(1), float(m.group(2))) for m in re.finditer(r"\[GC<[^>]*>: (\S+) .*?cycle ([\d.]+)ms END\]", t)]
ps = [float(x) for x in re.findall(r" p=([\d.]+)ms", t)]
kinds = {}
for k, c in cyc: kinds.setdefault(k, []).append(c)
print("GC cycles by kind (count, sum ms, max ms):", {k: (len(v), round(sum(v), 1), round(max(v), 2)) for k, v in kinds.items()})
print(f"pauses p=: {len(ps)}, sum {sum(ps):.1f} ms, max {max(ps) if ps else 0:.2f}, > 2 ms: {sorted(round(p, 2) for p in ps if p > 2)[-12:]}")
PY
thr inp1 $M1 64 6 --reps 5
thr prx1 $M1 64 8 --reps 5 --executor-mode proxy
thr inp2 $M1 64 6 --reps 5
thr prx2 $M1 64 8 --reps 5 --executor-mode proxy
(export LLMRT_BATCH_ATTENTION4_RING=1 LLMRT_KERNEL_DEFINES="$K:DB4X_NW64=4,DB4X_ST64=2,DB4X_MINB64=4"; thr nw4 $M1 64 6 --reps 5)
grep -h "runs:" "$OUT"/t_inp1.log "$OUT"/t_prx1.log "$OUT"/t_inp2.log "$OUT"/t_prx2.log "$OUT"/t_nw4.log
thr_summary gc inp1 prx1 inp2 prx2 nw4
same_ids inp1 prx1
same_ids inp1 nw4
left=$((44 - (SECONDS - _t0)))
echo "left $left s"
if [ "$left" -gt 7 ]; then
  (export LLMRT_KERNEL_DEFINES="$K:DB4X_NW64=4,DB4X_ST64=2,DB4X_MINB64=4"
   thr ab $M1 64 $((left - 1)) --ab-rows 64 --ab-prefill 64 --ab-opts '{"default":{},"nw4":{"batchAttention4Ring":true}}')
  grep -E "^A/B|^  default|^  nw4|logits|bits|rror" "$OUT/t_ab.log" | cut -c1-400
fi
stamp done
