package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"
)

const workloadsPipeline = `
sink "stdout" "console" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}
`

func TestDecodeWorkloads(t *testing.T) {
	src := `
agent {
  filter_self = false
  containers {
    runtimes = ["/run/podman/podman.sock"]
    wait     = "50ms"
  }
}
source "gadget" "exec" {
  gadget          = "trace_exec"
  containers_only = true
  filter {
    pid        = 42
    tid        = 43
    uid        = 0
    gid        = 1000
    comm       = "curl"
    mntns      = [4026531840]
    cgroups    = ["system.slice/x.service"]
    containers = ["web", "db"]
    fields     = "ret<0"
  }
}
` + workloadsPipeline
	f, diags := NewParser().ParseSource("t.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if f.Agent.FilterSelf {
		t.Error("filter_self = false was not decoded")
	}
	wantC := Containers{Enabled: true, Runtimes: []string{"/run/podman/podman.sock"}, Wait: 50e6}
	if diff := cmp.Diff(wantC, f.Agent.Containers, cmpopts.IgnoreTypes(hcl.Range{}, []hcl.Range{})); diff != "" {
		t.Errorf("containers block (-want +got):\n%s", diff)
	}
	s := f.Sources[0]
	if !s.ContainersOnly {
		t.Error("containers_only = true was not decoded")
	}
	uid, gid := uint32(0), uint32(1000)
	want := &SourceFilter{
		PID: 42, TID: 43, UID: &uid, GID: &gid, Comm: "curl", MntNS: []uint64{4026531840},
		Cgroups: []string{"system.slice/x.service"}, Containers: []string{"web", "db"}, Fields: "ret<0",
	}
	if diff := cmp.Diff(want, s.Filter, cmpopts.IgnoreTypes(hcl.Range{}, []hcl.Range{})); diff != "" {
		t.Errorf("filter block (-want +got):\n%s", diff)
	}

	f, diags = NewParser().ParseSource("t.hcl", []byte(`source "gadget" "exec" { gadget = "trace_exec" }`+workloadsPipeline))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !f.Agent.FilterSelf || !f.Agent.Containers.Enabled || f.Sources[0].Filter != nil || f.Sources[0].ContainersOnly {
		t.Errorf("defaults: filter_self %v, containers enabled %v, filter %v, containers_only %v; want true, true, nil, false",
			f.Agent.FilterSelf, f.Agent.Containers.Enabled, f.Sources[0].Filter, f.Sources[0].ContainersOnly)
	}
}

func TestDecodeWorkloadsErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"long comm", `filter { comm = "a-sixteen-bytes!" }`, "the kernel keeps at most 15"},
		{"negative pid", `filter { pid = -1 }`, "whole number from 0"},
		{"zero pid", `filter { pid = 0 }`, "greater than zero"},
		{"fractional uid", `filter { uid = 1.5 }`, "whole number"},
		{"invalid uid", `filter { uid = 4294967295 }`, "invalid id"},
		{"two filters", "filter {}\nfilter {}", "Duplicate filter block"},
		{"unknown attribute", `filter { process = 1 }`, "Unsupported argument"},
		{"containers not a list", `filter { containers = "web" }`, "Incorrect attribute value type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "source \"gadget\" \"exec\" {\n  gadget = \"trace_exec\"\n  " + tc.body + "\n}\n" + workloadsPipeline
			_, diags := NewParser().ParseSource("t.hcl", []byte(src))
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("diagnostics %v, want one saying %q", diags, tc.want)
			}
			for _, d := range diags {
				if d.Subject == nil || d.Subject.Start.Line < 3 {
					t.Errorf("diagnostic %q points at %v, not into the source block", d.Summary, d.Subject)
				}
			}
		})
	}
}
