#!/usr/bin/env bash
# decode (session 5) round 1: PDL on/off A/B + correctness; main's tree as the baseline (base.tgz = main's
# versions of the files this branch changes).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
t0=$SECONDS; stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "pdl A/B (one engine, sessions pdl off / on)"
timeout 80 bun bench/decode_pdl.ts --model $M --ctx 128,4096,32768 --decode 256 --check 16 > "$OUT/decode_pdl.log" 2>&1; echo "rc $?"
cat "$OUT/decode_pdl.log" | grep -v "^\s*$" | tail -8
stamp "gpu tests: pdl, graph, runtime, cuda_session"
timeout 60 bun test --timeout 120000 tests/gpu/pdl.test.ts tests/gpu/graph.test.ts tests/gpu/cuda_runtime.test.ts tests/gpu/cuda_session.test.ts > "$OUT/gputests.log" 2>&1; echo "rc $?"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|PDL control|worst rel|batch vs single greedy" "$OUT/gputests.log" | cut -c1-220 | head -20
stamp "llama-3.1-8b: pdl A/B (ctx 128, 4096)"
M8=/tmp/hfmodels/llama-3.1-8b
if [ -f $M8/config.json ]; then
  timeout 60 bun bench/decode_pdl.ts --model $M8 --ctx 128,4096 --decode 128 --check 4 > "$OUT/decode_pdl_8b.log" 2>&1; echo "rc $?"
  grep -v "^\s*$" "$OUT/decode_pdl_8b.log" | tail -5
else echo "no llama-3.1-8b checkpoint"; fi
stamp "main (baseline): decode_pdl.ts --baseline"
rm -rf /tmp/base /tmp/basex && mkdir -p /tmp/base /tmp/basex && cp -a . /tmp/base/ && python3 -c "import tarfile; tarfile.open('tools/gpu/s5-decode/base.txz').extractall('/tmp/basex')" && cp -a /tmp/basex/base/. /tmp/base/
( cd /tmp/base && rm -f tests/gpu/pdl.test.ts
  timeout 50 bun bench/decode_pdl.ts --baseline --model $M --ctx 128,4096,32768 --decode 256 --check 16 > "$OUT/decode_main.log" 2>&1; echo "rc $?"
  [ -f $M8/config.json ] && { timeout 40 bun bench/decode_pdl.ts --baseline --model $M8 --ctx 128,4096 --decode 128 --check 4 > "$OUT/decode_main_8b.log" 2>&1; echo "rc $?"; } )
grep -v "^\s*$" "$OUT/decode_main.log" | tail -4
grep -v "^\s*$" "$OUT/decode_main_8b.log" | tail -3
stamp done
