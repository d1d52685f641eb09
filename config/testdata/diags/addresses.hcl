agent {
  metrics_listen = "127.0.0.1"
  nats_server {
    listen = "127.0.0.1:99999"
  }
  control {
    nats {
      url = "nats://a:4222,ws://b:8080"
    }
  }
}

source "gadget" "exec" { gadget = "trace_exec" }

sink "nats" "port" { url = "nats://127.0.0.1:notaport" }
sink "nats" "scheme" { url = "http://127.0.0.1:4222" }
sink "nats" "nohost" { url = "nats://:4222" }
sink "nats" "empty" { url = " , " }
sink "nats" "good" { url = "tls://a.example:4443, b.example" }

pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.nats.port, sink.nats.scheme, sink.nats.nohost, sink.nats.empty, sink.nats.good]
}
