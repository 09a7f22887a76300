#!/usr/bin/env bash
# Session 20's first job (models: llama-3.1-8b llama-3.2-1b; ~280 s): what session 19 could not run for lack of device time —
# the GPU suite in 3 processes on the final defaults with a longer limit (session 19's third process ran past 115 s), then
# the int4 helper's r4 job (quantGemvPairDown A/B end to end and its two GPU tests).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
gpu_suite_par gputests 150 3
stamp "int4 r4 (quantGemvPairDown)"
OUT="$OUT/int4" timeout 120 bash tools/gpu/s19_int4_r4.sh
stamp done
