source "gadget" "exec" {
  gadget = "trace_exec"
}

sink "stdout" "console" {}

stage "wasm" "limits" {
  module       = "filter.wasm"
  memory_limit = "1KiB"
  workers      = 100
  timeout      = "soon"
  on_error     = "retry"
}

stage "wasm" "missing_module" {
  params = ["sh"]
}

stage "wasm" "policies" {
  module      = ""
  dead_letter = sink.stdout.console
}

stage "wasm" "wrong_kind" {
  module      = "x.wasm"
  on_error    = "dead_letter"
  dead_letter = stage.wasm.limits
}

stage "wasm" "no_sink" {
  module   = "x.wasm"
  on_error = "dead_letter"
}

stage "wasm" "grants" {
  module = "x.wasm"
  grants {
    env = { A = "1" }
    dir "data" {
      host = "/tmp"
    }
    dir "/x/../y" {}
    network = true
  }
  reload {
    poll = "0s"
  }
}

stage "lua" "other" {}

stage "wasm" "limits" {
  module = "again.wasm"
}

pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.limits, stage.wasm.missing_module, stage.wasm.policies, stage.wasm.wrong_kind, stage.wasm.no_sink, stage.wasm.grants, stage.lua.other]
  sinks   = [sink.stdout.console]
}
