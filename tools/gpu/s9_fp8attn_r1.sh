#!/usr/bin/env bash
# Session 9, FP8 decode attention (issue 14), round r1 on one H200 (queue job, budget 75 s; model llama-3.1-8b):
# decode_attention_{fp8kv|int8kv} (fp8DecodeAttention: RoPE + quantized KV write + split attention + merge in one
# launch for decode steps of <= 8 sequences). Decisive first: the kernel vs float64 and vs the unfused path (GPU test,
# the 8B configuration G = 4, hd 128, FP8 and INT8); then 8B FP8 + FP8 KV batch 1, the unfused path vs the fused one in
# the same process (decode-step profile), and fp8FlashPrefill (kv_dequant into a bf16 shadow layer + the bf16 flash
# prefill kernels) on top, with the 2048-token prefill profiled (task B).
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
M8=/tmp/hfmodels/llama-3.1-8b
P=/tmp/fp8pack
[ "$(df --output=avail -B1G /dev/shm 2> /dev/null | tail -1 | tr -d ' ')" -gt 24 ] 2> /dev/null && P=/dev/shm/fp8pack
P8=$P/l8b
mkdir -p $P
pk8=""
if [ -f "$P8/config.json" ] && ls "$P8"/*.safetensors > /dev/null 2>&1; then
  stamp "8B FP8 pack already there ($P8)"
else
  stamp "pack 8B in the background ($P8)"
  (timeout 48 python3 tools/quant-packers/pack_fp8_torch.py --model $M8 --out $P8 --calib-seqs 2 --calib-len 128 > "$OUT/pack8b.log" 2>&1; echo "pack8b rc $?" >> "$OUT/pack8b.log") &
  pk8=$!
fi
stamp "GPU test: fused quantized-KV decode attention vs float64 and the unfused path (G 4, hd 128; then the rest as time allows)"
timeout 24 bun test tests/gpu/fp8_decode_attention.test.ts -t "g4_(fp8|int8)kv_bf16_hd128|kv_dequant" > "$OUT/gpu_test.log" 2>&1
echo "rc $?"; grep -E "^\(pass|^\(fail|AssertionError|rror:|decode_attention_" "$OUT/gpu_test.log" | head -12 | cut -c1-420
[ -n "$pk8" ] && wait $pk8
[ -f "$OUT/pack8b.log" ] && tail -2 "$OUT/pack8b.log" | cut -c1-300
left=$((73 - (SECONDS - t0)))
stamp "8B FP8 + FP8 KV batch 1: unfused (default) vs fp8DecodeAttention vs + fp8FlashPrefill, decode-step + prefill profiles (${left} s left)"
timeout "$left" bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default,attn,attnflash --decode 128 --ttft 2048 --skip-bf16 --profile-decode --profile > "$OUT/e2e8b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |^  |rror" "$OUT/e2e8b.log" | cut -c1-1200
stamp done
