#!/usr/bin/env bash
# Session 6 throughput, round 2 (llama-3.2-1b, H200): decode_attention_batch now the default past 8 sequences and
# skinny_gemm removed. 64 x (128, 128) default (--profile-host: per-bucket graphs, kernels, host share) and with
# LLMRT_BATCH_ATTENTION=0 in the same run, greedy ids compared; bench/batch_divergence.ts (bf16 logits with each
# decode attention vs a float32 engine, teacher-forced; batch invariance by decode-step size); cuBLASLt at decode M
# (pinned batch-invariant algorithm vs heuristic vs tuned: what pinning decode GEMMs would cost).
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
M=/tmp/hfmodels/llama-3.2-1b
for run in default overlap attn0; do
  stamp "throughput 64 $run"
  case $run in
    default) unset LLMRT_BATCH_ATTENTION; P=--profile-host ;;
    overlap) unset LLMRT_BATCH_ATTENTION; P="--profile-host --overlap" ;;
    attn0) export LLMRT_BATCH_ATTENTION=0; P="" ;;
  esac
  LLMRT_BENCH_IDS=$OUT/ids_$run.json LLMRT_BENCH_JSON=$OUT/t64_$run.json timeout 45 bun bench/throughput.ts --model $M --requests 64 --input 128 --output 128 $P > "$OUT/t64_$run.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/t64_$run.log" | grep -E "llmrt:|host share|run of|executor clocks|^\| [0-9]|Error|error" | head -20
  grep -E "^  [a-z_0-9]+ +[0-9]+ ×" "$OUT/t64_$run.log" | head -14
done
unset LLMRT_BATCH_ATTENTION
python3 - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]
for x, y in (("attn0", "default"), ("default", "overlap")):
    try:
        a, b = (json.load(open(f"{o}/ids_{n}.json")) for n in (x, y))
        pre = sorted(next((i for i in range(min(len(p), len(q))) if p[i] != q[i]), min(len(p), len(q))) for p, q in zip(a, b))
        print(f"greedy ids {x} vs {y}: {sum(p == len(a[0]) for p in pre)}/{len(pre)} identical; common prefix min {pre[0]} median {pre[len(pre)//2]}")
    except Exception as e:
        print(f"ids compare {x} vs {y} failed", e)
PY
stamp "overlapped steps vs plain on the GPU (stories260k, float32)"
LLMRT_TEST_BACKEND=cuda timeout 40 bun test tests/executor_overlap.test.ts tests/gpu/overlap.test.ts > "$OUT/overlap_test.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|error|Error| pass$| fail$" "$OUT/overlap_test.log" | head -12
stamp "batch divergence 64 x 128, 32 steps"
LLMRT_BENCH_JSON=$OUT/divergence.json timeout 60 bun bench/batch_divergence.ts --model $M --requests 64 --input 128 --steps 32 > "$OUT/divergence.log" 2>&1
echo "rc $?"
grep -v -i warn "$OUT/divergence.log" | tail -30
stamp "cuBLASLt at decode M"
LLMRT_BENCH_JSON=$OUT/gemm_decode.json timeout 40 bun bench/prefill_gemm.ts --models 1b,8b --ms 64,512 --refs 256 --tuned > "$OUT/gemm_decode.log" 2>&1
echo "rc $?"
grep -E "GPU|M=|Error|error" "$OUT/gemm_decode.log" | head -12
stamp done
