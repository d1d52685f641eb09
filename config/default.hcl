# The built-in default: every built-in gadget into one pipeline, through a
# Wasm stage that adds user names, printed as a table and published to a
# NATS server the agent runs in-process (watch it with
# `sluice subscribe 'sluice.>'`). Start from a copy of this file to write
# your own.

agent {
  nats_server {
    listen    = "127.0.0.1:4222"
    jetstream = true
  }
}

source "gadget" "exec" {
  gadget = "trace_exec"
}

source "gadget" "open" {
  gadget = "trace_open"
}

source "gadget" "tcpconnect" {
  gadget = "trace_tcpconnect"
}

source "gadget" "signal" {
  gadget = "trace_signal"
}

# Every event gets the name of its uid's user from this host's /etc/passwd,
# read once at start (uid-to-user is one of the built-in example stages; see
# examples/stages and docs/stage-tutorial.md to write your own).
stage "wasm" "users" {
  module = "uid-to-user"
  params = { users = passwd_users() }
}

sink "stdout" "console" {
  format = "table"
}

# At least once into the embedded server's JetStream; a fleet points url at
# its NATS cluster instead. Up to 100 consecutive events of a source share a
# message (sluice subscribe reads them as events): the stream remembers
# every message id for its deduplication window, and one message per event
# cost the agent most of its memory and CPU.
sink "nats" "bus" {
  url     = "nats://127.0.0.1:4222"
  subject = "sluice.events.{host}.{source}"
  jetstream {
    stream  = "SLUICE"
    create  = true
    max_age = "1h"
  }
  batch {
    max_events = 100
  }
}

pipeline "default" {
  sources = [
    source.gadget.exec,
    source.gadget.open,
    source.gadget.tcpconnect,
    source.gadget.signal,
  ]
  stages = [stage.wasm.users]
  sinks  = [sink.stdout.console, sink.nats.bus]

  # A terminal that cannot keep up should lose old lines, not stall readers.
  queue {
    when_full = "drop_oldest"
  }
}
