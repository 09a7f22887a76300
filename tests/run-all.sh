#!/usr/bin/env bash
# Runs the whole suite under Bun and Deno (same test files) at the same time: `bun test tests/` beside two `deno test`
# processes that take every other test file each (a runtime runs its files one after another on mostly one thread,
# and Deno's share is the larger: its type check and a fresh isolate per file). Each process has its own cache root
# (LLMRT_CACHE_DIR: built engines, the C shim), temp dir and environment; its output goes to a log printed whole when
# all are done (Bun's, then Deno's). Prints one summary line `N passed, N failed, N skipped` summed over both runtimes.
# Exits non-zero if either fails. LLMRT_TEST_SERIAL=1: Bun, then Deno in one process (the old order, a core at a time).
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
  denos=(deno)
  run bun $bin/bun test --timeout 300000 tests/
  run deno $bin/deno test -A tests/
else
  denos=(deno1 deno2)
  # The files `deno test tests/` would find (its default pattern), every other one to each process.
  mapfile -t files < <(find tests -type f \( -name '*.test.*' -o -name '*_test.*' -o -name 'test.*' \) \( -name '*.ts' -o -name '*.tsx' -o -name '*.mts' -o -name '*.js' -o -name '*.mjs' -o -name '*.jsx' \) | sort)
  [ "${#files[@]}" -ge 2 ] || { echo "run-all.sh: fewer than 2 test files under tests/"; exit 1; }
  shard() { for i in "${!files[@]}"; do [ $((i % 2)) -eq "$1" ] && echo "${files[$i]}"; done; }
  mapfile -t deno1 < <(shard 0)
  mapfile -t deno2 < <(shard 1)
  echo "bun test and two deno test processes running side by side (logs: $log/{bun,deno1,deno2}.txt)"
  run bun $bin/bun test --timeout 300000 tests/ &
  run deno1 $bin/deno test -A "${deno1[@]}" &
  run deno2 $bin/deno test -A "${deno2[@]}" &
  wait
fi
for r in bun "${denos[@]}"; do
  echo "===== $r ($(cat "$log/$r.secs") s) ====="
  cat "$log/$r.txt"
done
num() { sed 's/\x1b\[[0-9;]*m//g' "$2" | grep -Eo "$1" | tail -1 | grep -Eo '[0-9]+' || echo 0; }
bun_rc=$(cat "$log/bun.rc")
bp=$(num '^ *[0-9]+ pass$' "$log/bun.txt"); bf=$(num '^ *[0-9]+ fail$' "$log/bun.txt"); bs=$(num '^ *[0-9]+ skip$' "$log/bun.txt")
# A runtime that crashed before its summary counts as one failure.
[ "$bun_rc" -ne 0 ] && [ "$bf" -eq 0 ] && bf=1
deno_rc=0 dp=0 df=0 ds=0 dsecs=""
for r in "${denos[@]}"; do
  rc=$(cat "$log/$r.rc") p=$(num '[0-9]+ passed' "$log/$r.txt") f=$(num '[0-9]+ failed' "$log/$r.txt") s=$(num '[0-9]+ ignored' "$log/$r.txt")
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  [ "$rc" -ne 0 ] && deno_rc=$rc
  dp=$((dp + p)) df=$((df + f)) ds=$((ds + s)) dsecs="$dsecs${dsecs:+ / }$(cat "$log/$r.secs")"
done
echo "bun: $bp passed, $bf failed, $bs skipped (exit $bun_rc, $(cat "$log/bun.secs") s); deno: $dp passed, $df failed, $ds skipped (exit $deno_rc, $dsecs s)"
echo "$((bp + dp)) passed, $((bf + df)) failed, $((bs + ds)) skipped"
[ "$bun_rc" -eq 0 ] && [ "$deno_rc" -eq 0 ]
