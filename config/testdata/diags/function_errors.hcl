agent {
  name     = env("SLUICE_TEST_UNSET_VARIABLE")
  data_dir = trimspace(file("missing.txt"))
}

source "gadget" "exec" {
  gadget = lower(42, 43)
  map    = nosuchfunc("rb")
}

sink "stdout" "console" {}

pipeline "main" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}
