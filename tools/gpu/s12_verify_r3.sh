#!/usr/bin/env bash
# Session 12, helper verify, round 3: r1 saw the 130-sequence batch4w case's eager logits differ from its graphs' at decode
# 0 (r2: all bitwise). Suspected cause: each session's CublasLtGemm loaded the GEMM timing file when created and timed a
# new decode shape (> 8 rows, not batch-invariant) on its own, so two sessions could pick different algorithms under load.
# This branch shares one timing cache per file in a process. Same job, each process with its own fresh LLMRT_CACHE_DIR
# (no timing file from the others; compiled kernels copied from the round's cache):
#   new_a/new_b  tests/gpu/batch_attention4.test.ts "repeated": one 130-sequence decode step 12 times on batch4w / batch2w,
#                graphs and eager, this branch's gemm.ts
#   old_a/old_b  the same test with main's gemm.ts (a copy of lib/ tests/ bench/ with tools/gpu/s12_verify_gemm_main.ts.txt)
#   gemm         tests/gpu/gemm.test.ts "timing file": two instances, one timing file: timed once, the same bits
#   divergence   the 1B divergence bench (load, a second sample of r1's accuracy numbers)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp start
fresh() { # a cache dir with the round's compiled kernels and no GEMM timing file
  local c
  c=$(mktemp -d /tmp/s12v-cache.XXXX)
  [ -d "${LLMRT_CACHE_DIR:-/nonexistent}/cubin" ] && { cp -rl "$LLMRT_CACHE_DIR/cubin" "$c/" 2> /dev/null || cp -r "$LLMRT_CACHE_DIR/cubin" "$c/"; }
  echo "$c"
}
old=/tmp/s12v-oldtree
rm -rf $old && mkdir -p $old
for e in * .[!.]*; do
  case $e in lib | tests | .git) ;; *) ln -s "$PWD/$e" "$old/$e" ;; esac
done
cp -r lib tests $old/
cp tools/gpu/s12_verify_gemm_main.ts.txt $old/lib/backends/cuda/gemm.ts
cmp -s $old/lib/backends/cuda/gemm.ts lib/backends/cuda/gemm.ts && echo "old tree: gemm.ts NOT replaced"
stamp "old tree ready"
run() { # NAME DIR ARGS...
  local name=$1 dir=$2 c
  shift 2
  c=$(fresh)
  (cd "$dir" && LLMRT_CACHE_DIR=$c timeout 40 bun test --timeout 600000 "$@" > "$OUT/$name.log" 2>&1; echo "rc $?" >> "$OUT/$name.log") &
}
run new_a . tests/gpu/batch_attention4.test.ts -t "repeated"
run new_b . tests/gpu/batch_attention4.test.ts -t "repeated"
run old_a $old tests/gpu/batch_attention4.test.ts -t "repeated"
run old_b $old tests/gpu/batch_attention4.test.ts -t "repeated"
run gemm . tests/gpu/gemm.test.ts -t "timing file"
(LLMRT_CACHE_DIR=$(fresh) LLMRT_BENCH_JSON="$OUT/divergence_1b.json" timeout 40 bun bench/batch_divergence.ts --model "$M1" --requests 64 --input 128 --steps 32 --kernels batch2,batch4 > "$OUT/divergence_1b.log" 2>&1; echo "rc $?" >> "$OUT/divergence_1b.log") &
wait
stamp "all done"
for f in new_a new_b old_a old_b gemm; do
  echo "-- $f: $(tail -1 "$OUT/$f.log")"
  grep -E "^\(fail|^ *[0-9]+ (pass|fail)$|^130-sequence|AssertionError" "$OUT/$f.log" | cut -c1-400 | head -6
done
echo "-- divergence: $(tail -1 "$OUT/divergence_1b.log")"
grep -E "^\| decode|nearer" "$OUT/divergence_1b.log" | head -4
stamp done
