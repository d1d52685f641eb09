agent {
  shutdown_grace       = "10 parsecs"
  loss_report_interval = 10
}

source "gadget" "exec" {
  gadget = "trace_exec"
}

sink "stdout" "console" {}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
  batch {
    max_delay = "fast"
  }
}
