# The control block, the agent group and a stage's reload settings: names
# that cannot be KV keys, two ways to authenticate, a replica count out of
# range, a poll too short to point a fleet at a registry. An empty control
# block is control_empty.hcl.
agent {
  group = "web.eu"
  control {
    nats {
      url           = "nats://10.0.0.1:4222,nats://10.0.0.2:4222"
      bucket        = "sluice stages"
      status_bucket = "sluice-stages"
      replicas      = 7
      token         = "t"
      creds_file    = "/etc/sluice/agent.creds"
      tls {
        cert_file = "/etc/sluice/agent.pem"
      }
    }
  }
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
stage "wasm" "f" {
  module = "drop-comm"
  reload {
    poll                  = "10ms"
    rollback_after_errors = 0
    rollback_window       = "0s"
  }
  stamp_version = "yes"
}
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.f]
  sinks   = [sink.stdout.out]
}
