source "gadget" "exec" { gadget = "trace_exec" }

sink "nats" "siem" {
  encoding   = "xml"
  token      = "t"
  creds_file = "/x.creds"
  password   = "p"
  jetstream {}
  batch { max_events = 0 }
  batch {}
  tls { cert_file = "/c.pem" }
}

pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.nats.siem]
}
