#!/usr/bin/env bash
# Runs the whole suite under Bun and Deno (same test files) at the same time — each runtime runs its files one after
# another on mostly one thread, so on two cores the runs overlap — each with its own cache root (LLMRT_CACHE_DIR: built
# engines, the C shim) and temp dir, its output in a log printed whole when both are done (Bun's, then Deno's). Prints one
# summary line `N passed, N failed, N skipped` summed over both runtimes. Exits non-zero if either fails.
# LLMRT_TEST_SERIAL=1 runs Bun, then Deno (the old order, half the load).
set -uo pipefail
cd "$(dirname "$0")/.."
export NO_COLOR=1 FORCE_COLOR=0
bin=node_modules/.bin
log=$(mktemp -d)
trap 'rm -rf "$log"/cache-* "$log"/tmp-*' EXIT

# run NAME CMD...: CMD with its own cache root and temp dir; output to $log/NAME.txt, exit status and seconds beside it.
run() {
  local name=$1 start=$SECONDS
  shift
  mkdir -p "$log/cache-$name" "$log/tmp-$name"
  LLMRT_CACHE_DIR="$log/cache-$name" TMPDIR="$log/tmp-$name" "$@" > "$log/$name.txt" 2>&1
  echo $? > "$log/$name.rc"
  echo $((SECONDS - start)) > "$log/$name.secs"
}
if [ "${LLMRT_TEST_SERIAL:-0}" = 1 ]; then
  run bun $bin/bun test --timeout 300000 tests/
  run deno $bin/deno test -A tests/
else
  echo "bun test and deno test running side by side (logs: $log/bun.txt, $log/deno.txt)"
  run bun $bin/bun test --timeout 300000 tests/ &
  run deno $bin/deno test -A tests/ &
  wait
fi
for r in bun deno; do
  echo "===== $r test ($(cat "$log/$r.secs") s) ====="
  cat "$log/$r.txt"
done
bun_rc=$(cat "$log/bun.rc") deno_rc=$(cat "$log/deno.rc")
num() { sed 's/\x1b\[[0-9;]*m//g' "$2" | grep -Eo "$1" | tail -1 | grep -Eo '[0-9]+' || echo 0; }
bp=$(num '^ *[0-9]+ pass$' "$log/bun.txt"); bf=$(num '^ *[0-9]+ fail$' "$log/bun.txt"); bs=$(num '^ *[0-9]+ skip$' "$log/bun.txt")
dp=$(num '[0-9]+ passed' "$log/deno.txt"); df=$(num '[0-9]+ failed' "$log/deno.txt"); ds=$(num '[0-9]+ ignored' "$log/deno.txt")
# A runtime that crashed before its summary counts as one failure.
[ "$bun_rc" -ne 0 ] && [ "$bf" -eq 0 ] && bf=1
[ "$deno_rc" -ne 0 ] && [ "$df" -eq 0 ] && df=1
echo "bun: $bp passed, $bf failed, $bs skipped (exit $bun_rc, $(cat "$log/bun.secs") s); deno: $dp passed, $df failed, $ds skipped (exit $deno_rc, $(cat "$log/deno.secs") s)"
echo "$((bp + dp)) passed, $((bf + df)) failed, $((bs + ds)) skipped"
[ "$bun_rc" -eq 0 ] && [ "$deno_rc" -eq 0 ]
