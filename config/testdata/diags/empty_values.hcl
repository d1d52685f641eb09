source "gadget" "exec" {
  gadget     = ""
  event_type = ""
}

sink "stdout" "console" {}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}
