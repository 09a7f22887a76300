#!/usr/bin/env bash
# Session 19, lead: the GPU suite in 3 processes on the final defaults (batchAttention4X at DB4_XSEL 783 and quantGemvPairX
# merged and on after the closing call, which ran with them off).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
gpu_suite_par gputests 150 3
stamp done
