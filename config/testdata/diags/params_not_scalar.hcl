source "gadget" "exec" {
  gadget = "trace_exec"
  params = {
    ignore_failed = true
    comms         = ["sh", "bash"]
    filter        = { uid = 0 }
    nothing       = null
    ignore_failed = false
  }
}

source "gadget" "open" {
  gadget = "trace_open"
  params = ["ignore_failed"]
}

sink "stdout" "console" {}

pipeline "main" {
  sources = [source.gadget.exec, source.gadget.open]
  sinks   = [sink.stdout.console]
}
