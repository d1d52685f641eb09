#!/usr/bin/env bash
# Sustained throughput of `sluice run trace_open -o json` against a generator
# that opens files as fast as it can for 10 s. Prints the generator's opens,
# and sluice's delivered and lost counts (its exit summary), as root.
#
#   bash bench/open-throughput.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
secs=${1:-10}
make -s build
go build -o bin/openloop ./bench/openloop
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# sluice starts first and runs past the generator so the whole load is seen.
./bin/sluice run trace_open -o json --timeout $((secs + 4))s --stats >/dev/null 2>"$out/sluice.err" &
sluice_pid=$!
sleep 2
./bin/openloop -d "${secs}s" | tee "$out/gen.txt"
wait "$sluice_pid"
grep -E 'events' "$out/sluice.err" || cat "$out/sluice.err"
