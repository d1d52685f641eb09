source "gadget" "top" {
  gadget   = "./top.bpf.o"
  interval = "often"
  runs     = 0
}
sink "stdout" "console" {
  format   = "table"
  sort     = "-bytes,-"
  max_rows = -5
}
pipeline "main" {
  sources = [source.gadget.top]
  sinks   = [sink.stdout.console]
}
