agent {
  name = "node-a"
}

agent {
  name = "node-b"
}

source "gadget" "exec" {
  gadget = "trace_exec"
}

source "gadget" "exec" {
  gadget = "trace_open"
}

sink "stdout" "console" {}

sink "stdout" "console" {
  format = "table"
}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
  queue {
    max_events = 10
  }
  queue {
    max_events = 20
  }
}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}
