agent {
  control {
    nats {
      url            = "nats://127.0.0.1:4222"
      nkey_seed_file = "testdata/validate/absent.nk"
    }
  }
}

source "gadget" "exec" { gadget = "trace_exec" }

sink "nats" "creds" {
  creds_file = "testdata/validate/absent.creds"
}

sink "nats" "junk" {
  creds_file = "testdata/validate/not-pem.txt"
  tls {
    ca_file   = "testdata/validate/not-pem.txt"
    cert_file = "testdata/validate/absent-cert.pem"
    key_file  = "testdata/validate/absent-key.pem"
  }
}

pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.nats.creds, sink.nats.junk]
}
