#!/usr/bin/env bash
# Session 8, round 1 (lead): validates session 7's off-by-default experiments before flipping defaults, most decisive first.
# (Ran on 5c29746, where DS_MINK was 512; on later trees the kernel has 256, so both sk runs measure 256.)
#   suite    — tests/gpu (all but cuda_session, nccl_tp2) + quant_cuda with LLMRT_BATCH_ATTENTION2=1 LLMRT_GEMV_KS=1
#              (includes batch_attention2.test.ts and decode_sk.test.ts, which set their options themselves)
#   thr8b    — llama-3.1-8b bf16 512 x (128,128): batchAttention2 on vs off, greedy ids compared
#   session  — cuda_session.test.ts (llmrt vs transformers) with the same flags
#   sk       — bench/decode_pdl.ts --sk on 8B and 1B (A decode_attention, B _sk, C _sk + gemvSplitK), DS_MINK 512 vs 256
#   firstrun — the README main job with an empty cache, then cached
#   quant    — 1B 64 x (128,128) W4A16 (RTN g128) / W8A16 / bf16; 1B W8A16 batch-1 e2e
# A job of the batched queue (models: hfrefs llama-3.1-8b); logs in $OUT.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
LLMRT_BATCH_ATTENTION2=1 LLMRT_GEMV_KS=1 gpu_suite suite 150
LLMRT_BATCH_ATTENTION2=1 thr 8b_512_b2 $M8 512 40
thr 8b_512 $M8 512 40
stamp "cuda_session with the flags"
LLMRT_BATCH_ATTENTION2=1 LLMRT_GEMV_KS=1 timeout 60 bun test --timeout 600000 tests/gpu/cuda_session.test.ts > "$OUT/session.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$" "$OUT/session.log" | cut -c1-300 | head -12
stamp "sk 8B (DS_MINK 512)"
timeout 60 bun bench/decode_pdl.ts --model $M8 --ctx 512,2048,8192,32768 --decode 32 --check 4 --sk --c '{"decodeSplitK":true,"gemvSplitK":true}' > "$OUT/sk_8b.log" 2>&1
echo "rc $?"
grep -E "graph|tok/s|copy|%|differ" "$OUT/sk_8b.log" | head -16 | cut -c1-250
alt=/tmp/s8-mink256
rm -rf $alt && mkdir -p $alt && tar --exclude=./node_modules --exclude=./.gpucuda -cf - . | tar -C $alt -xf - && ln -s "$(pwd)/node_modules" $alt/node_modules && ln -s "$(pwd)/.gpucuda" $alt/.gpucuda
sed -i 's/^#define DS_MINK 512/#define DS_MINK 256/' $alt/lib/backends/cuda/kernels/decode_attention_sk.cu
sed -i 's/^export const DECODE_SK_MIN_SPLIT = 512;/export const DECODE_SK_MIN_SPLIT = 256;/' $alt/lib/backends/cuda/attention_choice.ts
grep -c "DS_MINK 256" $alt/lib/backends/cuda/kernels/decode_attention_sk.cu; grep -c "DECODE_SK_MIN_SPLIT = 256" $alt/lib/backends/cuda/attention_choice.ts
stamp "sk 8B (DS_MINK 256)"
(cd $alt && timeout 60 bun bench/decode_pdl.ts --model $M8 --ctx 512,2048,8192,32768 --decode 32 --check 4 --sk --c '{"decodeSplitK":true,"gemvSplitK":true}') > "$OUT/sk_8b_256.log" 2>&1
echo "rc $?"
grep -E "graph|tok/s|copy|%|differ" "$OUT/sk_8b_256.log" | head -16 | cut -c1-250
stamp "sk 1B (DS_MINK 256)"
(cd $alt && timeout 40 bun bench/decode_pdl.ts --model $M1 --ctx 128,512,2048,8192,32768 --decode 64 --check 8 --sk --c '{"decodeSplitK":true,"gemvSplitK":true}') > "$OUT/sk_1b_256.log" 2>&1
echo "rc $?"
grep -E "graph|tok/s|copy|%|differ" "$OUT/sk_1b_256.log" | head -16 | cut -c1-250
first_run
thr 1b_64 $M1 64 25
thr 1b_64_w4 $M1 64 40 --quant W4A16
thr 1b_64_w8 $M1 64 40 --quant W8A16
stamp "1B W8A16 batch-1 e2e"
timeout 45 bun bench/quant_e2e.ts --model $M1 --algos W8A16,W4A16 --no-ref > "$OUT/q1b.log" 2>&1
echo "rc $?"
grep -E "tok/s|%|rror" "$OUT/q1b.log" | head -8 | cut -c1-250
same_ids 8b_512 8b_512_b2
thr_summary 8b_512_b2 8b_512 1b_64 1b_64_w4 1b_64_w8
stamp done
