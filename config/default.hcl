# The built-in default: every built-in gadget into one pipeline, printed as a
# table. Start from a copy of this file to write your own.

source "gadget" "exec" {
  gadget = "trace_exec"
}

source "gadget" "open" {
  gadget = "trace_open"
}

source "gadget" "tcpconnect" {
  gadget = "trace_tcpconnect"
}

source "gadget" "signal" {
  gadget = "trace_signal"
}

sink "stdout" "console" {
  format = "table"
}

pipeline "default" {
  sources = [
    source.gadget.exec,
    source.gadget.open,
    source.gadget.tcpconnect,
    source.gadget.signal,
  ]
  sinks = [sink.stdout.console]

  # A terminal that cannot keep up should lose old lines, not stall readers.
  queue {
    when_full = "drop_oldest"
  }
}
