source "gadget" "exec" {
  gadget      = "trace_exec"
  buffer_size = "12 potatoes"
}

sink "stdout" "console" {}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
  queue {
    max_bytes = "16 MiBs"
  }
}
