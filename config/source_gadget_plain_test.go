package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlainGadgetOptions(t *testing.T) {
	src := `
source "gadget" "exec" {
  gadget          = "./execsnoop.bpf.o"
  event_type      = "event"
  event_type_file = "types.bpf.o"
  programs        = ["enter", "exit"]
  skip_programs   = ["sig_trace"]
  fields {
    args     = { as = "strings", count = "args_count", size = "args_size" }
    saddr_v6 = { as = "ip", family = "af", rename = "saddr" }
    u        = { tag = "kind", cases = { 1 = "exec", EXIT = "exit" } }
    exec_arg = { member = "u.exec.args", as = "strings" }
  }
}
sink "stdout" "console" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}`
	f, diags := Parse("plain.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := f.Sources[0]
	got := Source{EventType: s.EventType, EventTypeFile: s.EventTypeFile, Programs: s.Programs, SkipPrograms: s.SkipPrograms, Fields: s.Fields}
	want := Source{
		EventType: "event", EventTypeFile: "types.bpf.o",
		Programs: []string{"enter", "exit"}, SkipPrograms: []string{"sig_trace"},
		Fields: []FieldHint{
			{Name: "args", As: "strings", Count: "args_count", Size: "args_size"},
			{Name: "saddr_v6", As: "ip", Family: "af", Rename: "saddr"},
			{Name: "u", Tag: "kind", Cases: map[string]string{"1": "exec", "EXIT": "exit"}},
			{Name: "exec_arg", Member: "u.exec.args", As: "strings"},
		},
	}
	if diff := cmp.Diff(want, got, ignoreRanges); diff != "" {
		t.Errorf("plain gadget options (-want +got):\n%s", diff)
	}
	if r := s.Fields[1].Range; r.Start.Line != 10 || s.EventTypeFileRange.Start.Line != 5 || len(s.ProgramsRanges) != 2 || s.ProgramsRanges[1].Start.Column != 31 {
		t.Errorf("ranges: field hint %v, event_type_file %v, programs %v", r, s.EventTypeFileRange, s.ProgramsRanges)
	}
}
