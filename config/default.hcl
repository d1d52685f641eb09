# The built-in default: a security subset of the built-in gadgets (process
# execs, TCP connections and binds, mounts, credential changes, eBPF loads,
# signals) in one pipeline, through a Wasm stage that masks secrets in
# command lines, printed as a table and published to a NATS server the
# agent runs in-process (watch it with `sluice subscribe 'sluice.>'`).
# Events of processes in containers carry container.* (and k8s.*) fields
# when a Docker or Podman API socket is found; the agent leaves its own
# events out. Start from a copy of this file to write your own.

agent {
  # The collector runs when the heap has grown by 15% of its live size
  # (Go's default is all of it, the agent's otherwise half): some 9 MB
  # less memory than 50 for a few percent more CPU at a host's usual
  # event rates. For sustained high rates, 50 or 100 spends less CPU on
  # collecting.
  gc_percent = 15

  nats_server {
    listen    = "127.0.0.1:4222"
    jetstream = true
  }
}

source "gadget" "exec" {
  gadget = "trace_exec"
}

source "gadget" "tcp" {
  gadget = "trace_tcp"
}

source "gadget" "bind" {
  gadget = "trace_bind"
}

source "gadget" "mount" {
  gadget = "trace_mount"
}

source "gadget" "setuid" {
  gadget = "trace_setuid"
}

source "gadget" "bpf" {
  gadget = "trace_bpf"
}

source "gadget" "signal" {
  gadget = "trace_signal"
}

# DNS lookups (trace_dns) are left out: its socket filter needs a packet
# socket, and so CAP_NET_RAW beyond the three capabilities the agent needs
# otherwise (docs/operations.md, "Privileges"). Add it with:
#   source "gadget" "dns" { gadget = "trace_dns" }

# Secrets in command lines (--password=..., tokens, keys, URL credentials)
# are masked before events leave the host (redact is one of the built-in
# stages; see stages/ and docs/stage-tutorial.md to write your own). User and group names need no stage: the decoder adds user and
# group from this host's passwd and group files.
stage "wasm" "redact" {
  module = "redact"
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
  # The stream stores a message once however often it is retried within
  # duplicate_window. The embedded server runs in the agent, so a retry
  # comes within seconds (a lost acknowledgement, a restart); a replay after
  # a longer outage may store a message twice (at least once, never lost).
  # The server keeps every message id of the window, up to three times
  # over between its compactions: 30s instead of the sink's 2m keeps that
  # a quarter as large. Raise it for a remote cluster with longer outages.
  jetstream {
    stream           = "SLUICE"
    create           = true
    max_age          = "1h"
    duplicate_window = "30s"
  }
  batch {
    max_events = 100
  }
}

pipeline "default" {
  sources = [
    source.gadget.exec,
    source.gadget.tcp,
    source.gadget.bind,
    source.gadget.mount,
    source.gadget.setuid,
    source.gadget.bpf,
    source.gadget.signal,
  ]
  stages = [stage.wasm.redact]
  sinks  = [sink.stdout.console, sink.nats.bus]

  # A terminal that cannot keep up should lose old lines, not stall readers.
  queue {
    when_full = "drop_oldest"
  }
}
