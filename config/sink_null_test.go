package config

import (
	"strings"
	"testing"
)

func TestNullSink(t *testing.T) {
	src := `
source "gadget" "exec" { gadget = "trace_exec" }
sink "null" "discard" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.null.discard]
}
`
	f, diags := Parse("f.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := f.Sink(Reference{Kind: KindSink, Type: "null", Name: "discard"})
	if s == nil || s.Null == nil || s.Type != "null" {
		t.Fatalf("sink.null.discard = %+v, want a null sink", s)
	}

	_, diags = Parse("f.hcl", []byte(strings.Replace(src, "{}", `{ format = "json" }`, 1)))
	var found bool
	for _, d := range diags {
		found = found || (d.Summary == "Unsupported argument" && d.Subject != nil && d.Subject.Start.Line == 3 && d.Subject.Start.Column == 25)
	}
	if !found {
		t.Errorf("an attribute in a null sink: got %v, want \"Unsupported argument\" at f.hcl:3:25", diags)
	}
}
