agent {
  log_lvl = "debug"
}

source "gadget" "exec" {
  gadget       = "trace_exec"
  buffer_sizes = "8MiB"
}

sink "stdout" "console" {
  fromat = "table"
}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
  batch {
    max_events = 16
    delay      = "5ms"
  }
}
