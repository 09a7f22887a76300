#!/usr/bin/env bash
# Session 10, issue 16 (helper prefill), round 3 (the last; budget 45 s): the decisions.
#   hf     — transformers (eager, SDPA) TTFT of a 2048-token prompt on llama-3.2-1b, same GPU, same job: loads in the
#            background from the start, times only after the steps below (--wait-file).
#   1b     — llama-3.2-1b, 2048-token prompt, one process: default vs resid+wide (gemmResidual + gemmTuneWide) vs wgmma
#            (flash_prefill_wg at hd 64) vs wgmma+resid+wide; TTFT median of 9, logits bitwise, profiles.
#   tests  — tests/gpu/flash_prefill.test.ts (both kernels vs float64 and each other), tests/gpu/gemm.test.ts's bucket
#            tests (incl. the new one: a GEMM adding into C in place, gemmResidual's call, rows bitwise equal across M).
#   kernel — prefill attention A/B: ref_flash / ref_wg = main's kernels (tools/gpu/s10_ref.tgz, made at queue time)
#            against this branch's flash / wg (K and V chunks from one address computation, full tiles without mask
#            compares, the O rescale skipped when no row's max changed: the same outputs, checked bitwise), and tilings
#            hd128 g3n64s4o, hd64 g1n64s3ob3 / g1n64s4ob2: vs float64 on 2 packed layouts, then causal one sequence,
#            32 q / 8 kv heads, hd 64 T 2048 (llama-3.2-1b) and hd 128 T 32000 (llama-3.1-8b), beside torch SDPA (cuDNN).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
mkdir -p /tmp/s10ref && tar xzf tools/gpu/s10_ref.tgz -C /tmp/s10ref
go=/tmp/s10_hf_go
rm -f $go
timeout 44 python3 bench/hf_bench.py latency --model "$M1" --prompt-lens 2048 --decode 0 --wait-file $go > "$OUT/hf_1b.log" 2>&1 &
hf=$!
stamp "1b 2048: default / resid+wide / wgmma / wgmma+resid+wide"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 16 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 2048 --reps 9 \
  --variants default,resid+wide,wgmma,wgmma+resid+wide --profile default,wgmma+resid+wide > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "^GPU|ceiling|prompt 2048|GEMMs|SUMMARY|rror|^profile|flash_prefill|rmsnorm" "$OUT/ttft_1b.log" | cut -c1-300
stamp "GPU tests: flash_prefill, gemm buckets"
timeout 12 bun test --timeout 600000 tests/gpu/flash_prefill.test.ts tests/gpu/gemm.test.ts -t "flash_prefill|bucket|adding into C" > "$OUT/gputests.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^\(skip|pass$|fail$|rel|differ|worst|rror" "$OUT/gputests.log" | cut -c1-260 | head -30
left=$((42 - (SECONDS - _t0)))
stamp "kernel A/B ($left s left)"
timeout "$left" python3 tools/cuda-kernel-check/flash_tile_time.py --shapes 64:2048,128:32000 --out "$OUT" --ref-dir /tmp/s10ref/s10_ref \
  --kinds ref_flash,flash,ref_wg,wg,wgv_g3n64s4o,wgv_g1n64s3ob3,wgv_g1n64s4ob2 > "$OUT/tiles.log" 2>&1
echo "rc $?"
grep -E "regs|FAIL|SUMMARY|hd(64|128) T=|rror|failed" "$OUT/tiles.log" | grep -v "^  \.\." | cut -c1-240 | head -40; grep -q SUMMARY "$OUT/tiles.log" || grep "^  \.\." "$OUT/tiles.log"
stamp "transformers TTFT 2048"
touch $go
wait $hf
echo "rc $?"
grep -o '"ttft_ms": {[^}]*}' "$OUT/hf_1b.log"; grep -iE "error" "$OUT/hf_1b.log" | tail -2 | cut -c1-200
stamp done
