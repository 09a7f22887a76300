#!/usr/bin/env bash
# Runs the whole suite under Bun and then Deno (same test files) and prints one summary line
# `N passed, N failed, N skipped` summed over both runtimes. Exits non-zero if either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export NO_COLOR=1 FORCE_COLOR=0
bin=node_modules/.bin
log=$(mktemp -d)
$bin/bun test --timeout 300000 tests/ 2>&1 | tee "$log/bun.txt"; bun_rc=${PIPESTATUS[0]}
$bin/deno test -A tests/ 2>&1 | tee "$log/deno.txt"; deno_rc=${PIPESTATUS[0]}
num() { sed 's/\x1b\[[0-9;]*m//g' "$2" | grep -Eo "$1" | tail -1 | grep -Eo '[0-9]+' || echo 0; }
bp=$(num '^ *[0-9]+ pass$' "$log/bun.txt"); bf=$(num '^ *[0-9]+ fail$' "$log/bun.txt"); bs=$(num '^ *[0-9]+ skip$' "$log/bun.txt")
dp=$(num '[0-9]+ passed' "$log/deno.txt"); df=$(num '[0-9]+ failed' "$log/deno.txt"); ds=$(num '[0-9]+ ignored' "$log/deno.txt")
# A runtime that crashed before its summary counts as one failure.
[ "$bun_rc" -ne 0 ] && [ "$bf" -eq 0 ] && bf=1
[ "$deno_rc" -ne 0 ] && [ "$df" -eq 0 ] && df=1
echo "bun: $bp passed, $bf failed, $bs skipped (exit $bun_rc); deno: $dp passed, $df failed, $ds skipped (exit $deno_rc)"
echo "$((bp + dp)) passed, $((bf + df)) failed, $((bs + ds)) skipped"
[ "$bun_rc" -eq 0 ] && [ "$deno_rc" -eq 0 ]
