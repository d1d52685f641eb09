source "gadget" "exec" {
  gadget = "trace_exec"
}

sinks "stdout" "console" {
  format = "json"
}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
  queues {
    max_events = 10
  }
}

sink "stdout" "console" {}
