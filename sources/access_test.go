package sources

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// TestParamAccess: parameters read and set between NewGadget and Open
// reach the kernel; after Open they are fixed, and maps are found by name.
func TestParamAccess(t *testing.T) {
	b, _ := gadgets.Lookup("trace_exec")
	spec, err := ParseGadget("trace_exec", b.Object, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGadget(spec, GadgetConfig{Source: "exec", Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := g.Param("ignore_failed"); err != nil || v != "false" {
		t.Fatalf("Param(ignore_failed) = %q, %v; want the default false", v, err)
	}
	var pe *ParamError
	if _, err := g.Param("nope"); !errors.As(err, &pe) || !strings.Contains(err.Error(), "ignore_failed") {
		t.Errorf("Param(nope) = %v; want a *ParamError listing the parameters", err)
	}
	if err := g.SetParam("ignore_failed", "maybe"); !errors.As(err, &pe) {
		t.Errorf("SetParam(ignore_failed, maybe) = %v; want a *ParamError", err)
	}
	if err := g.SetParam("nope", "1"); !errors.As(err, &pe) || !errors.Is(err, ErrUnknownParam) {
		t.Errorf("SetParam(nope) = %v; want no such parameter", err)
	}
	if err := g.SetParam("ignore_failed", "1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := g.Param("ignore_failed"); v != "true" {
		t.Errorf("Param after SetParam(1) = %q, want true", v)
	}
	if _, err := g.Map("pending"); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Map before Open = %v, want ErrNotLoaded", err)
	}

	testutil.RequireBPF(t)
	if err := g.Open(); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.SetParam("ignore_failed", "false"); !errors.Is(err, ErrLoaded) {
		t.Errorf("SetParam after Open = %v, want ErrLoaded", err)
	}
	if v, _ := g.Param("ignore_failed"); v != "true" {
		t.Errorf("Param after Open = %q, want the value it loaded with (true)", v)
	}
	m, err := g.Map("pending")
	if err != nil {
		t.Fatal(err)
	}
	if m.Type() != ebpf.LRUHash {
		t.Errorf("map pending is a %s, want an LRU hash map (as the ELF declares it)", m.Type())
	}
	if _, err := g.Map("nope"); err == nil || !strings.Contains(err.Error(), "pending") {
		t.Errorf("Map(nope) = %v; want an error listing the maps", err)
	}

	// The value set before Open is what the kernel runs with: failed
	// execs are not reported.
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, c) }()
	marker := fmt.Sprintf("/nonexistent/sluice-%d", rand.Uint32())
	exec.Command(marker).Run()
	exec.Command("/bin/true", marker).Run()
	c.waitFor(t, "exec of /bin/true", func(ev map[string]any) bool {
		l, _ := ev["args"].([]any)
		return len(l) == 2 && l[1] == marker
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, ev := range c.events {
		if ev["filename"] == marker {
			t.Errorf("failed exec reported although SetParam(ignore_failed, 1) ran before Open: %v", ev)
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Map("pending"); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Map after Close = %v, want ErrNotLoaded", err)
	}
}
