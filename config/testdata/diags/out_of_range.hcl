# Values past the ranges of numeric attributes: each passed validation
# before and then exhausted memory, wrapped around, or spun a core.
agent {
  shutdown_grace       = "1ns"
  loss_report_interval = "1ns"
  gc_percent           = 5
  memory_limit         = "8MiB"
}

source "gadget" "exec" {
  gadget      = "trace_exec"
  buffer_size = "4097MiB"
}

sink "file" "audit" {
  path           = "/tmp/x.jsonl"
  fsync_interval = "1ns"
  rotate {
    max_size = "1B"
  }
}

sink "nats" "bus" {
  batch {
    max_events = 100000000
    max_delay  = "1ns"
  }
  spool {
    max_bytes = "1KiB"
  }
  jetstream {
    stream      = "S"
    ack_timeout = "1ns"
    max_pending = 100000000
  }
}

stage "wasm" "f" {
  module  = "drop-comm"
  timeout = "1ns"
  tick    = "1ns"
  reload {
    poll = "1ns"
  }
}

pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.f]
  sinks   = [sink.file.audit, sink.nats.bus]
  queue {
    max_events = 1000000000
    max_bytes  = "1TiB"
  }
  batch {
    max_events = 1000000000
    max_delay  = "1ns"
  }
}
