source "gadget" "exec" {
  gadget = "trace_exec"
}

sink "stdout" "console" {}

pipeline "wrong_shape" {
  sources = [source.exec, source.gadget.exec.extra, source.gadget["exec"], "exec"]
  sinks   = [sink.stdout.console]
}

pipeline "wrong_kind" {
  sources = [sink.stdout.console]
  sinks   = [source.gadget.exec]
}

pipeline "not_a_list" {
  sources = source.gadget.exec
  sinks   = [sink.stdout.console, sink.stdout.console]
}
