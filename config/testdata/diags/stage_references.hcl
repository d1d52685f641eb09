source "gadget" "exec" {
  gadget = "trace_exec"
}

sink "stdout" "console" {}

stage "wasm" "no_shells" {
  module      = "drop-comm"
  on_error    = "dead_letter"
  dead_letter = sink.file.rejects
}

stage "wasm" "unused" {
  module = "drop-comm"
}

pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.no_shell, "stage.wasm.no_shells", sink.stdout.console, stage.wasm.no_shells, stage.wasm.no_shells]
  sinks   = [sink.stdout.console]
}
