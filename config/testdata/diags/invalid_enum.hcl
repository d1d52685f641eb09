agent {
  log_level  = "verbose"
  log_format = "jsno"
}

source "gadget" "exec" {
  gadget = "trace_exec"
}

sink "stdout" "console" {
  format = "yaml"
}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
  queue {
    when_full = "drop_old"
  }
}
