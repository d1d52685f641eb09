source "gadget" "exec" {
  gadget = "trace_exec"
}

sink "stdout" "console" {}

pipeline "no_sinks" {
  sources = [source.gadget.exec]
}

pipeline "no_sources" {
  sources = []
  sinks   = [sink.stdout.console]
}
