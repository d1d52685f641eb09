source "gadget" "exec" {
  gadget = "trace_exec"
}

sink "stdout" "console" {}

sink "stdout" "rejects" {}

# Its dead-letter sink counts as used; the stage itself is in no pipeline.
stage "wasm" "forgotten" {
  module      = "drop-comm"
  on_error    = "dead_letter"
  dead_letter = sink.stdout.rejects
}

pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}
