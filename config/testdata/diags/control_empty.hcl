# A control block needs a nats block.
agent {
  control {}
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
