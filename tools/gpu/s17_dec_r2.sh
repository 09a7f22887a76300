#!/usr/bin/env bash
# Session 17 (issue 16 item 1), helper dec, round 2 (budget 150 s; re-queued after the first run failed: a generic lambda in decode_attention_sk.cu passed nvcc but not NVRTC). Round 1 (one process, bitwise): the attention reading the
# step's q / k / v in one round trip after pdlWait (decode_attention_sk.cu DS_QPRE) took the 1B graph 771.8 -> 763.9 us at
# 128 keys, 785.9 -> 781.8 at 256 (stamps: qkv -> attention span -1.2 / -1.8 us a layer); the early residual read in the
# mode-1 GEMVs (GF_YPRE) lost (+12 us at 256 keys) and was removed. Now DS_QPRE is the default (bf16 KV); new switch
# sampleSplit (off): the sampler's greedy rows take their argmax over 32 blocks (sample_split_f32; round 1's breakdown: the
# one-block sampler is ~10 us of the 1B step). This job:
#   1. GPU tests: tests/gpu/sample_split.test.ts (new: sample_split_f32's ids = sample_f32's), tests/gpu/decode_sk.test.ts
#      (the attention on the new default)
#   2. 1B bench/decode_gaps.ts, one process, in turn: A default, O -DDS_QPRE=0 (the old attention), S sampleSplit, A2, O2
#      (graph us at 128 / 256 keys, synced tok/s, logits and ids vs A)
#   3. 1B bench/latency.ts (synced + overlapped tok/s) default / LLMRT_SAMPLE_SPLIT=1 / default / split, prompt 128
#   4. 8B A / O / S in the time left (if the checkpoint is there)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "GPU tests: sample_split, decode_sk"
timeout 45 bun test --timeout 600000 tests/gpu/sample_split.test.ts tests/gpu/decode_sk.test.ts > "$OUT/tests.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|sample_split_f32:|rror" "$OUT/tests.log" | cut -c1-300 | head -12
O='"decode_attention_sk.cu":["-DDS_QPRE=0"]'
V='[{"label":"A default"},{"label":"O qpre-off","defines":{'$O'}},{"label":"S sampleSplit","opts":{"sampleSplit":true}},{"label":"A2 default"},{"label":"O2 qpre-off","defines":{'$O'}}]'
stamp "1B: $V"
LLMRT_BENCH_JSON=$OUT/gaps_1b.json timeout 40 bun bench/decode_gaps.ts --model "$M1" --ctx 128,256 --rounds 7 --decode 128 \
  --variants "$V" > "$OUT/gaps_1b.log" 2>&1
echo "rc $?"
grep -E "ceiling|graph ctx|rror" "$OUT/gaps_1b.log" | cut -c1-300 | head -10
for i in 1 2; do
  for v in 0 1; do
    stamp "latency 1B, LLMRT_SAMPLE_SPLIT=$v ($i)"
    LLMRT_SAMPLE_SPLIT=$v timeout 20 bun bench/latency.ts --model "$M1" --prompt-lens 128 > "$OUT/latency_1b_s${v}_$i.log" 2>&1
    echo "rc $?"
    grep -E "decode batch 1|graph replay" "$OUT/latency_1b_s${v}_$i.log" | cut -c1-200 | head -3
  done
done
left=$((144 - (SECONDS - _t0)))
stamp "8B: A / O / S ($left s left)"
V8='[{"label":"A default"},{"label":"O qpre-off","defines":{'$O'}},{"label":"S sampleSplit","opts":{"sampleSplit":true}}]'
if [ -f "$M8/config.json" ] && [ "$left" -gt 35 ]; then
  LLMRT_BENCH_JSON=$OUT/gaps_8b.json timeout "$left" bun bench/decode_gaps.ts --model "$M8" --ctx 128,256 --rounds 5 --decode 32 \
    --variants "$V8" > "$OUT/gaps_8b.log" 2>&1
  echo "rc $?"
  grep -E "ceiling|graph ctx|rror" "$OUT/gaps_8b.log" | cut -c1-300 | head -6
else
  echo "8B skipped (checkpoint: $(ls "$M8" 2> /dev/null | head -3 | tr '\n' ' '))"
fi
stamp done
