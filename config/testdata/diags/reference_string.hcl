source "gadget" "exec" {
  gadget = "trace_exec"
}

sink "stdout" "console" {}

pipeline "main" {
  sources = ["source.gadget.exec"]
  sinks   = [sink.stdout.console]
}
