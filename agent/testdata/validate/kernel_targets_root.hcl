source "gadget" "absent" {
  gadget = "../../../gadgets/testdata/absent_targets.bpf.o"
}

source "gadget" "tc_no_ifaces" {
  gadget = "../../../gadgets/testdata/ig_tc.bpf.o"
}

source "gadget" "tc_absent_iface" {
  gadget = "../../../gadgets/testdata/ig_tc.bpf.o"
  ifaces = ["lo", "sluice-absent0"]
}

source "gadget" "netns" {
  gadget = "../../../gadgets/testdata/ig_dns.bpf.o"
  netns  = ["/run/netns/sluice-absent"]
}

source "gadget" "exec" {
  gadget           = "trace_exec"
  ifaces           = ["lo"]
  sample_frequency = 99
}

sink "stdout" "out" {}

pipeline "p" {
  sources = [
    source.gadget.absent,
    source.gadget.tc_no_ifaces,
    source.gadget.tc_absent_iface,
    source.gadget.netns,
    source.gadget.exec,
  ]
  sinks = [sink.stdout.out]
}
