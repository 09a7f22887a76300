#!/usr/bin/env bash
# Session 11, issue 16 item 2 (helper prefill), round 1 (budget 45 s): where the 1B 2048-token prefill goes now.
#   ttft  — llama-3.2-1b, prompts 128 / 2048, one process, sessions alternating: the session defaults vs prefillPdl,
#           prefillMlpChunks, rowKernels, all three: TTFT (median of 9), logits bitwise, host enqueue vs 5 steps back to
#           back, eager per-launch profiles (default, chunks+norm) and the host's staging + planning before the first launch.
#   gemm  — the 4 linears at M 2048 alone (bench/prefill_gemm.ts, tuned) with random A (session 8 measured them with a
#           constant A: a real prefill's activations are random and draw more power), beside the 8192^3 ceiling.
#   smi   — SM clock / power / throttle reasons sampled every 50 ms during both (read only).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
smi() { timeout "$1" nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active --format=csv,noheader -lms 50 > "$OUT/smi_$2.csv" 2>&1 &
  smipid=$!; }
summ() { python3 - "$OUT/smi_$1.csv" << 'PY'
import sys
rows = [l.split(", ") for l in open(sys.argv[1]) if l.count(",") >= 5]
try:
    sm = [int(r[1].split()[0]) for r in rows]; pw = [float(r[3].split()[0]) for r in rows]
    busy = [(s, p, r[5].strip()) for s, p, r in zip(sm, pw, rows) if p > 200]
    print(f"smi {sys.argv[1].split('/')[-1]}: {len(rows)} samples; SM clock min {min(sm)} max {max(sm)} MHz; power max {max(pw):.0f} W;",
          f"samples > 200 W: {len(busy)}, their SM clock min {min((b[0] for b in busy), default=0)} median {sorted(b[0] for b in busy)[len(busy)//2] if busy else 0};",
          "throttle reasons seen:", sorted({r[5].strip() for r in rows}))
except Exception as e:
    print("smi parse failed", e, rows[:2])
PY
}
stamp "1b TTFT 128 / 2048: default / pdl / chunks / norm / all, profiles"
smi 30 ttft
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 30 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 9 \
  --variants default,pdl,chunks,norm,pdl+chunks+norm --profile default,chunks+norm > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "ceiling|prompt (128|2048)|GEMMs|SUMMARY|rror|^profile|^  " "$OUT/ttft_1b.log" | cut -c1-260
kill "$smipid" 2> /dev/null; summ ttft
stamp "prefill GEMMs alone, A random"
smi 10 gemm_rand
LLMRT_BENCH_JSON=$OUT/gemm_rand.json timeout 10 bun bench/prefill_gemm.ts --models 1b --ms 2048 --refs 256 --tuned --random-a > "$OUT/gemm_rand.log" 2>&1
echo "rc $?"; grep -E "ceiling|^\||M=|bucketed:|rror" "$OUT/gemm_rand.log" | cut -c1-260
kill "$smipid" 2> /dev/null; summ gemm_rand
stamp done
