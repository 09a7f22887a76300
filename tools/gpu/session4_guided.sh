#!/usr/bin/env bash
# Session 4, issue 15's device parts (helper "guided"), one H200 run, carry .gpucuda + .gpu-guided:
#   setup  — @mlc-ai/web-xgrammar into .gpucuda's node_modules (xg.tar.xz, carried: the staged
#            node_modules predate it); llama-3.2-1b random weights (in the background) with a
#            byte-level synthetic tokenizer (tools/gpu/synthetic_tokenizer.py --bytes: JSON punctuation)
#   tests  — tests/gpu/guided.test.ts (device masks = host masks; stories260k guided JSON on CUDA)
#   guided — bench/guided_decoding.ts --e2e on llama-3.2-1b: plain vs guided JSON decode tokens/s, batch 1 and 64
#   spec   — bench/speculative.ts on CUDA at batch 1: kjv-llama (NGram, DraftTarget with kjv-llama-draft)
#   spec1b — bench/speculative.ts on llama-3.2-1b (random weights): plain vs NGram at batch 1
#   lora   — tests/gpu/lora.test.ts (LoRA = merged weights, f32 and bf16) and bench/lora.ts on llama-3.2-1b:
#            64 requests over 4 rank-16 adapters beside no LoRA (run as: bash tools/gpu/session4_guided.sh setup lora)
# Logs in $OUT; a summary is printed.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
mkdir -p ../shared && ln -sfn "$LLMRT_MODELS" ../shared/models
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
M=/tmp/hfmodels/llama-3.2-1b
stages=${*:-setup tests guided spec spec1b}
mpid=""
for s in $stages; do
  stamp "$s"
  case $s in
    setup)
      mkdir -p .gpucuda/node_modules/@mlc-ai && tar -C .gpucuda/node_modules/@mlc-ai -xJf xg.tar.xz && echo "xgrammar $(grep '"version"' .gpucuda/node_modules/@mlc-ai/web-xgrammar/package.json)"
      (timeout 120 python3 .gpucuda/hf_reference.py make-model --preset llama-3.2-1b --out $M > "$OUT/make_model.log" 2>&1 \
        && python3 tools/gpu/synthetic_tokenizer.py $M 128256 --bytes) &
      mpid=$! ;;
    tests)
      timeout 120 bun test --timeout 600000 tests/gpu/guided.test.ts > "$OUT/gpu_guided_test.log" 2>&1
      grep -E "^\(pass|^\(fail|^\(skip|CUDA masked|stories260k CUDA|error|Error|^ *[0-9]+ (pass|fail|skip)" "$OUT/gpu_guided_test.log" | cut -c1-400 | head -20 ;;
    guided)
      [ -n "$mpid" ] && { wait $mpid; mpid=""; echo "model made: $(ls $M | tr '\n' ' ')"; tail -2 "$OUT/make_model.log"; }
      timeout 170 bun bench/guided_decoding.ts --e2e --e2e-only --model $M --backend cuda --batch 1,64 --new 128 > "$OUT/guided_e2e.log" 2>&1
      tail -12 "$OUT/guided_e2e.log" | cut -c1-400 ;;
    spec)
      timeout 120 bun bench/speculative.ts --backend cuda --batch 1 --new 128 > "$OUT/spec_kjv.log" 2>&1
      tail -8 "$OUT/spec_kjv.log" | cut -c1-400 ;;
    spec1b)
      timeout 120 bun bench/speculative.ts --model $M --backend cuda --batch 1 --new 128 --modes plain,NGram > "$OUT/spec_1b.log" 2>&1
      tail -7 "$OUT/spec_1b.log" | cut -c1-400 ;;
    lora)
      timeout 120 bun test --timeout 600000 tests/gpu/lora.test.ts > "$OUT/gpu_lora_test.log" 2>&1
      grep -E "^\(pass|^\(fail|CUDA LoRA|error|Error|^ *[0-9]+ (pass|fail|skip)" "$OUT/gpu_lora_test.log" | cut -c1-400 | head -12
      [ -n "$mpid" ] && { wait $mpid; mpid=""; }
      timeout 150 bun bench/lora.ts --model $M --backend cuda --batch 64 --new 64 --adapters 4 --rank 16 > "$OUT/lora_bench.log" 2>&1
      tail -6 "$OUT/lora_bench.log" | cut -c1-400 ;;
    *) echo "unknown stage $s" ;;
  esac
done
stamp done
