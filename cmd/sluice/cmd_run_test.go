package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
)

// TestSourceName: `sluice run` names its one source after the gadget: a
// built-in's name, an ELF's base name without .bpf.o, an image's last
// repository element without its tag or digest.
func TestSourceName(t *testing.T) {
	for _, c := range []struct{ gadget, want string }{
		{"trace_exec", "trace_exec"},
		{"./gadgets/trace_open.bpf.o", "trace_open"},
		{"/abs/dir/my.o", "my"},
		{"localhost:5000/gadgets/trace_exec:v1", "trace_exec"},
		{"oci://localhost:5000/gadgets/trace_exec:v1", "trace_exec"},
		{"ghcr.io/org/x@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "x"},
		{"registry.example.com:443/a/b/c:1.0@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "c"},
		{"localhost/solo:latest", "solo"},
		{".bpf.o", "gadget"},
	} {
		if got := sourceName(c.gadget); got != c.want {
			t.Errorf("sourceName(%q) = %q, want %q", c.gadget, got, c.want)
		}
	}
}

// TestRunConfigIsTheConfigsDefaults: the config `sluice run` builds in Go
// is the one the config decoder makes of the same blocks, defaults and
// all, except for what run sets on purpose (no control socket). A default
// added to the decoder and not to config.DefaultAgent, DefaultQueue or
// DefaultBatch fails here.
func TestRunConfigIsTheConfigsDefaults(t *testing.T) {
	decoded, diags := config.Parse("run.hcl", []byte(`
source "gadget" "trace_exec" { gadget = "trace_exec" }
sink "stdout" "terminal" { format = "table" }
pipeline "run" {
  sources = [source.gadget.trace_exec]
  sinks   = [sink.stdout.terminal]
  queue { when_full = "drop_oldest" }
}
`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	decoded.Agent.ControlSocket = "" // run has no control socket
	got := runConfig("trace_exec", nil, "table")
	if diff := cmp.Diff(decoded, got, cmpopts.IgnoreTypes(hcl.Range{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("sluice run's config (-decoded +run):\n%s", diff)
	}
}
