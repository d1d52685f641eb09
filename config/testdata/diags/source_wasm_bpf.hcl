source "wasm_bpf" "values" {
  module       = "app.wasm"
  args         = "-p 1"
  emit         = "lines"
  memory_limit = "1KiB"
  stop_grace   = "soon"
  grants {
    stdout = true
    dir "data" {
      host = "/tmp"
    }
  }
}

source "wasm_bpf" "no_module" {
  args = ["-v"]
}

source "wasm_bpf" "empty" {
  module = ""
  gadget = "trace_exec"
}

sink "stdout" "console" {}

pipeline "p" {
  sources = [source.wasm_bpf.values, source.wasm_bpf.no_module, source.wasm_bpf.empty]
  sinks   = [sink.stdout.console]
}
