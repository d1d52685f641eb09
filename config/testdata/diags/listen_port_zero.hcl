agent {
  metrics_listen = "[::1]:0"
  nats_server {
    listen = "localhost:0"
  }
}

source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}

pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
