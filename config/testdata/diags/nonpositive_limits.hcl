agent {
  shutdown_grace = "0s"
}

source "gadget" "exec" {
  gadget      = "trace_exec"
  buffer_size = 0
}

sink "stdout" "console" {}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
  queue {
    max_events = -1
    max_bytes  = "-4MiB"
  }
  batch {
    max_events = 2.5
    max_delay  = "-50ms"
  }
}
