source "gadget" "exec" {
  gadget        = "./execsnoop.bpf.o"
  programs      = ["a", "a"]
  skip_programs = [""]
  fields {
    args  = { as = "list" }
    argc  = { count = "args_count" }
    addr  = { as = "ip", family = 2 == 2 ? "" : "af" }
    u     = { tag = "kind" }
    v     = { cases = { 1 = "x" }, tag = "k", as = "ip" }
    w     = { colour = "red" }
    x     = "strings"
    y     = {}
  }
  fields {}
}
sink "stdout" "console" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}
