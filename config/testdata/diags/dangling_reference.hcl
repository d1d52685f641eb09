source "gadget" "exec" {
  gadget = "trace_exec"
}

source "gadget" "open" {
  gadget = "trace_open"
}

sink "stdout" "console" {}

pipeline "main" {
  sources = [source.gadget.exce, source.gadget.open, source.gadget.exec]
  sinks   = [sink.nats.siem]
}
