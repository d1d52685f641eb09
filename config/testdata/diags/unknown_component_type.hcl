source "ebpf" "exec" {
  gadget = "trace_exec"
}

sink "stdot" "console" {}

pipeline "main" {
  sources = [source.ebpf.exec]
  sinks   = [sink.stdot.console]
}
