package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
)

// TestAgentSnapshotsEveryInterval: a source of an iterator-only gadget with
// interval and runs takes that many snapshots, each row carrying its
// snapshot's number, and the agent stops once the source has finished.
func TestAgentSnapshotsEveryInterval(t *testing.T) {
	testutil.RequireBPF(t)
	dir := t.TempDir()
	obj, err := gadgets.TestObject("ig_snapshot")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ig_snapshot.bpf.o"), obj, 0o644); err != nil {
		t.Fatal(err)
	}
	src := `source "gadget" "snap" {
  gadget   = "./ig_snapshot.bpf.o"
  params   = { target_tgid = ` + strconv.Itoa(os.Getpid()) + ` }
  interval = "100ms"
  runs     = 2
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.snap]
  sinks   = [sink.stdout.out]
}
`
	path := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	f, diags := config.Parse(path, []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	out := &testutil.SyncBuffer{}
	a, diags := New(f, Options{Stdout: out, Metrics: pipeline.NewRegistry()})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the agent did not stop after the source's two snapshots")
	}
	seen := map[float64]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if n, ok := ev["snapshot"].(float64); ok {
			seen[n] = true
		}
	}
	if !seen[1] || !seen[2] || len(seen) != 2 {
		t.Errorf("snapshots seen %v, want 1 and 2", seen)
	}
}
