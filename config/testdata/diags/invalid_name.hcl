source "gadget" "my exec" {
  gadget = "trace_exec"
}

sink "stdout" "1console" {}

pipeline "main pipe" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}
