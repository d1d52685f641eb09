package sources

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
)

func preflightGadget(t *testing.T, name string, elf []byte, cfg GadgetConfig) *Gadget {
	t.Helper()
	if elf == nil {
		b, ok := gadgets.Lookup(name)
		if !ok {
			t.Fatalf("no built-in gadget %q", name)
		}
		elf = b.Object
	}
	spec, err := ParseGadget(name, elf, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGadget(spec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// Every built-in gadget attaches on this kernel (the other tests attach
// them), so a preflight that refuses one is wrong.
func TestPreflightPassesBuiltins(t *testing.T) {
	testutil.RequireRoot(t, "reads tracefs (mode 0700) to find tracepoints")
	if err := PrepareKernel(); err != nil {
		t.Fatal(err)
	}
	pf := NewPreflight()
	for _, b := range gadgets.Builtins() {
		if got := pf.Check(preflightGadget(t, b.Name, nil, GadgetConfig{})); len(got) != 0 {
			t.Errorf("%s: %+v, want nothing", b.Name, got)
		}
	}
	// Programs of each kind this kernel supports besides tracepoints.
	if got := pf.Check(preflightGadget(t, "attach_kinds", testObject(t, "attach_kinds"), GadgetConfig{})); len(got) != 0 {
		t.Errorf("attach_kinds: %+v, want nothing", got)
	}
}

// Without tracefs (a user who is not root), tracepoints are reported
// unchecked, not refused.
func TestPreflightTracepointsUncheckedWithoutTracefs(t *testing.T) {
	pf := &Preflight{btf: btf.NewCache(), tracefsWhy: "tracefs (/sys/kernel/tracing) is readable by root only"}
	got := pf.Check(preflightGadget(t, "trace_exec", nil, GadgetConfig{}))
	if len(got) == 0 {
		t.Fatal("got nothing, want the tracepoints unchecked")
	}
	for _, f := range got {
		if f.Effect != Unchecked || !strings.Contains(f.Err.Error(), "readable by root only") {
			t.Errorf("got %+v, want an unchecked tracepoint", f)
		}
	}
}

func TestPreflightSampleFrequencyAboveKernelLimit(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/perf_event_max_sample_rate")
	if err != nil {
		t.Fatal(err)
	}
	max, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	elf := testObject(t, "ig_profile")
	pf := NewPreflight()
	if got := pf.Check(preflightGadget(t, "ig_profile", elf, GadgetConfig{SampleFrequency: max})); len(got) != 0 {
		t.Errorf("at the limit: %+v, want nothing", got)
	}
	got := pf.Check(preflightGadget(t, "ig_profile", elf, GadgetConfig{SampleFrequency: max + 1}))
	if len(got) != 1 || got[0].Effect != Refused || got[0].Setting != SettingSampleFrequency || !errors.Is(got[0].Err, ErrKernelFeature) {
		t.Fatalf("above the limit: %+v, want the sample frequency refused", got)
	}
}

// Absent uprobe targets are skipped by Open, so the preflight says so
// rather than refusing the gadget.
func TestPreflightAbsentUprobesAreSkipped(t *testing.T) {
	got := NewPreflight().Check(preflightGadget(t, "ig_uprobe_absent", testObject(t, "ig_uprobe_absent"), GadgetConfig{}))
	var skipped []string
	for _, f := range got {
		if f.Effect == Refused {
			t.Errorf("refused %s: %v", f.Program, f.Err)
		}
		if f.Effect == Skipped && errors.Is(f.Err, ErrNoTarget) {
			skipped = append(skipped, f.Program)
		}
	}
	if strings.Join(skipped, ",") != "ig_absent_library,ig_absent_symbol" {
		t.Errorf("skipped %v, want both absent uprobes (findings: %+v)", skipped, got)
	}
}
