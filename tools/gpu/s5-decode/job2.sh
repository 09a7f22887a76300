#!/usr/bin/env bash
# decode (session 5) round 2: kernel checks (decode_step.py --only checks), GPU tests, then the PDL A/B of
# gemv knob variants (GF_PF bulk L2 prefetch, GF_NV norm prologue, GF_DB, LLMRT_PDL_EARLY) on llama-3.2-1b.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
K=lib/backends/cuda/kernels
t0=$SECONDS; stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stamp "kernel checks: decode_step.py --only checks"
timeout 50 python3 tools/cuda-kernel-check/decode_step.py --only checks > "$OUT/decode_step_checks.log" 2>&1; echo "rc $?"
echo "ok $(grep -c '^  ok  ' "$OUT/decode_step_checks.log"), FAIL $(grep -c '^  FAIL' "$OUT/decode_step_checks.log")"; grep '^  FAIL' "$OUT/decode_step_checks.log" | head -5 | cut -c1-250
stamp "gpu tests: pdl, cuda_session"
timeout 40 bun test --timeout 120000 tests/gpu/pdl.test.ts tests/gpu/cuda_session.test.ts > "$OUT/gputests.log" 2>&1; echo "rc $?"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|worst rel" "$OUT/gputests.log" | cut -c1-200 | head -12
variant() { # NAME DEFINE=VALUE...: a tree copy with those #define defaults, then the PDL A/B
  local name=$1; shift
  rm -rf /tmp/v && cp -a . /tmp/v
  for kv in "$@"; do sed -i "s|^#define ${kv%%=*} .*|#define ${kv%%=*} ${kv#*=}|" /tmp/v/$K/gemv.cu /tmp/v/$K/common.cuh; done
  ( cd /tmp/v && timeout 40 bun bench/decode_pdl.ts --model $M --ctx 128,4096,32768 --decode 256 --check 8 > "$OUT/v_$name.log" 2>&1; echo "rc $?" )
  grep -E "^pdl o|^PDL on" "$OUT/v_$name.log" | sed "s/^/  [$name] /" | cut -c1-230
}
stamp "variants"
variant committed
variant pf0 GF_PF=0
variant pf0_nv0 GF_PF=0 GF_NV=0
variant pf0_db1 GF_PF=0 GF_DB=1
variant pf0_early GF_PF=0 LLMRT_PDL_EARLY=1
variant pf0_u8 GF_PF=0 GF_U=8
stamp done
