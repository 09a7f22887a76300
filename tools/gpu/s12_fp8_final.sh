#!/usr/bin/env bash
# Session 12, helper fp8 (issue 14), the closing call (budget 30 s; no checkpoint): tests/gpu/fp8_s12_switches.test.ts —
# fp8DecodeAttnQuant + prefillTileScan vs both off (explicit options, whatever the defaults), a random FP8 + FP8 KV Llama at
# hd 128, G 4: a 12-prompt prefill (flash_prefill_wgt_q8) and two 12-row decode steps (decode_attention_batch4_q8_fp8kv),
# every logit bit for bit equal.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "GPU test: fp8_s12_switches"
timeout 27 bun test --timeout 600000 tests/gpu/fp8_s12_switches.test.ts > "$OUT/test_s12.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^\(skip|AssertionError|rror:|differ" "$OUT/test_s12.log" | head -8 | cut -c1-300
stamp done
