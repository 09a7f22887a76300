#!/usr/bin/env bash
# Session 11 (issues 16 / 14), helper batchattn, round 5:
#   test   — tests/gpu/batch_attention4.test.ts (small random Llamas, hd 64 / 128, bf16 / e4m3 caches, G 4 / 12 / 2: logits
#            near the CPU session, graphs = eager bitwise, 9- vs 12-sequence steps bitwise)
#   e2e    — llama-3.1-8b bf16 512 × (128,128) --defer-decodes 1, same job: A default / B LLMRT_BATCH_ATTENTION4=1 (r3's kernel)
#   timing — two q·k accumulator chains (DB4_QK2) vs one, 8B 512 / 64 seqs (information only: other sums, other bits)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "gpu test batch_attention4"
timeout 24 bun test --timeout 600000 tests/gpu/batch_attention4.test.ts > "$OUT/test.log" 2>&1; echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)$|^batch4 " "$OUT/test.log" | cut -c1-400 | head -12
phases() { sed -n '/steps of the timed run/,/^  step 3:/p' "$OUT/t_$1.log" | grep -v "^| ---" | grep -iE "^\| (decode|prefill)" | cut -c1-200 | head -3; }
thr a8 $M8 512 14 --profile-steps --defer-decodes 1
phases a8
LLMRT_BATCH_ATTENTION4=1 thr b8 $M8 512 14 --profile-steps --defer-decodes 1
phases b8
thr_summary a8 b8
same_ids a8 b8
stamp "kernel: QK2 timing"
timeout 14 python3 tools/cuda-kernel-check/decode_attention_batch4.py --only timing --cases 8b:512:128-256,8b:64:128-256 \
  --cfgs "2,1,1,8;2,1,1,8,0,1,1,1;d;2,2,1,6,0,1,1,1" --fcfgs "d;2,2,1,8,0,1,1,1" > "$OUT/qk2.log" 2>&1; echo "rc $?"
grep -E "seqs ctx|Error|error" "$OUT/qk2.log" | cut -c1-400 | head -6
stamp done
