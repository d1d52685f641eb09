#!/usr/bin/env bash
# Agent start to first event: the time from starting `sluice agent` to the
# first trace_exec event on stdout, through a Wasm stage, with a cold
# compilation cache and then with the cached module. Uses the Go guest of
# wasmstages/testdata (2 MB, the Go runtime included: the slow case) unless
# MODULE is given. As root.
#
#   bash bench/stage-startup.sh [MODULE]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
module=$(realpath "${1:-wasmstages/testdata/gofilter.wasm}")
make -s build
out=$(mktemp -d)
trap 'kill "$gen" 2>/dev/null || true; rm -rf "$out"' EXIT
cat >"$out/start.hcl" <<HCL
agent {
  data_dir       = "$out/data"
  log_level      = "warn"
  shutdown_grace = "2s"
}
source "gadget" "exec" { gadget = "trace_exec" }
stage "wasm" "filter" {
  module = "$module"
  params = { comms = ["no-such-comm"] }
}
sink "stdout" "out" { format = "json" }
pipeline "start" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.filter]
  sinks   = [sink.stdout.out]
  batch { max_delay = "5ms" }
}
HCL
# Something to see: an exec every 2 ms.
(while true; do /bin/true; sleep 0.002; done) &
gen=$!

measure() {
	local start end
	: >"$out/events"
	start=$(date +%s%N)
	./bin/sluice agent --config "$out/start.hcl" >"$out/events" 2>"$out/err" &
	local pid=$!
	while [ ! -s "$out/events" ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			cat "$out/err" >&2
			exit 1
		fi
		sleep 0.001
	done
	end=$(date +%s%N)
	kill -TERM "$pid"
	wait "$pid" || true
	echo $(((end - start) / 1000000))
}
echo "cold cache:   $(measure) ms to the first event"
for i in 1 2 3; do
	echo "cached run $i: $(measure) ms to the first event"
done
