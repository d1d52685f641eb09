source "gadget" "exec" {
  gadget = "trace_exec"
}

source "gadget" "open" {
  gadget = "trace_open"
}

sink "stdout" "console" {}

sink "stdout" "spare" {}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}
