#!/usr/bin/env bash
# What a tap costs a loaded pipeline: one agent runs trace_open into a file
# sink while bench/openloop opens files as fast as it can; for SECONDS each,
# nobody taps, then `sluice ctl tap source.open` is read as fast as it
# comes, then a tap is attached that nobody reads. Prints the events/s the
# sink wrote and the kernel's losses in each window, from `ctl status`. As
# root.
#
#   bash bench/tap-overhead.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
secs=${1:-5}
make -s build
go build -o bin/openloop ./bench/openloop
dir=$(mktemp -d)
trap 'kill "$agent" 2>/dev/null; rm -rf "$dir"' EXIT
cat >"$dir/agent.hcl" <<HCL
agent {
  data_dir       = "$dir"
  control_socket = "$dir/control.sock"
}
source "gadget" "open" { gadget = "trace_open" }
sink "file" "out" {
  path   = "events.msgpack"
  format = "msgpack"
  fsync  = "never"
}
pipeline "p" {
  sources = [source.gadget.open]
  sinks   = [sink.file.out]
  queue { when_full = "drop_newest" }
}
HCL
./bin/sluice agent --config "$dir/agent.hcl" 2>"$dir/agent.err" &
agent=$!
ctl() { ./bin/sluice ctl --socket "$dir/control.sock" "$@"; }
until ctl status >/dev/null 2>&1; do sleep 0.1; done
counts() { # sink sent, source kernel drops
  ctl status -o json | python3 -c 'import json,sys; p=json.load(sys.stdin)["pipelines"][0]; print(p["sinks"][0]["counts"]["sent"], p["sources"][0]["counts"].get("drops_by",{}).get("kernel",0))'
}
window() { # name
  read -r s0 k0 < <(counts)
  ./bin/openloop -d "${secs}s" >/dev/null
  read -r s1 k1 < <(counts)
  printf '%-10s %12d events/s written   %10d lost in the kernel\n' "$1" $(( (s1 - s0) / secs )) $(( k1 - k0 ))
}
window "no tap"
ctl tap source.open >/dev/null & reader=$!
sleep 0.5
window "tap read"
kill "$reader"
# A reader that never reads: its socket fills, then the tap's buffer.
mkfifo "$dir/stuck"
ctl tap source.open >"$dir/stuck" & stuck=$!
exec 3<>"$dir/stuck"   # keep the fifo open, never read it
sleep 0.5
window "tap stuck"
kill "$stuck"
