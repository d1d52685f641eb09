#!/usr/bin/env bash
# Sustained trace_open throughput of the agent without a stage and with one
# Wasm filter stage (the C drop-comm filter of wasmstages/testdata, keeping
# every event so that both runs write the same output), against a
# generator that opens files as fast as it can. Prints the events each run
# delivered per second and the ratio. As root.
#
#   bash bench/stage-throughput.sh [SECONDS] [MODULE]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
secs=${1:-10}
module=$(realpath "${2:-wasmstages/testdata/filter.wasm}")
make -s build
go build -o bin/openloop ./bench/openloop
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# config NAME STAGE_BLOCK STAGES_LIST writes a config for one run.
config() {
	cat >"$out/$1.hcl" <<HCL
agent {
  data_dir       = "$out/data"
  log_level      = "info"
  shutdown_grace = "5s"
}
source "gadget" "open" { gadget = "trace_open" }
$2
sink "stdout" "out" { format = "json" }
pipeline "bench" {
  sources = [source.gadget.open]
  stages  = [$3]
  sinks   = [sink.stdout.out]
  queue { when_full = "drop_oldest" }
}
HCL
}
config none "" ""
config stage "stage \"wasm\" \"filter\" {
  module = \"$module\"
  params = { comms = [\"no-such-comm\"] }
}" "stage.wasm.filter"

run() {
	./bin/sluice agent --config "$out/$1.hcl" >/dev/null 2>"$out/$1.err" &
	local pid=$!
	sleep 3 # gadget loaded, module compiled (or cached)
	./bin/openloop -d "${secs}s" >"$out/$1.gen"
	kill -TERM "$pid"
	wait "$pid" || true
	# "events: received R, delivered D, dropped X (...)" in the stop log line.
	local delivered
	delivered=$(grep -o 'delivered [0-9]*' "$out/$1.err" | tail -1 | awk '{print $2}')
	if [ -z "$delivered" ]; then
		cat "$out/$1.err" >&2
		exit 1
	fi
	echo "$1: generator $(cat "$out/$1.gen"); $(grep -o 'events: [^"]*' "$out/$1.err" | tail -1)" >&2
	echo "$delivered"
}
# Warm the compilation cache so both measured runs start alike. In a
# subshell: run's exit on failure would otherwise end the script here,
# silently (its message goes to /dev/null), despite the || true.
(run stage) >/dev/null 2>&1 || true
none=$(run none)
stage=$(run stage)
awk -v n="$none" -v s="$stage" -v t="$secs" 'BEGIN {
	printf "without stage: %.0f events/s\nwith filter:   %.0f events/s (%.1f%% of without)\n", n/t, s/t, 100*s/n
}'
