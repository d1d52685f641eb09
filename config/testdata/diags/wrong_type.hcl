agent {
  name      = ["node-a"]
  log_level = { level = "debug" }
}

source "gadget" "exec" {
  gadget = "trace_exec"
  params = "ignore_failed"
}

sink "stdout" "console" {}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
  queue {
    max_events = "many"
  }
}
