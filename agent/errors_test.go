package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// An error names each component once: the sink says which sink it is, so
// the agent starting it does not say so again (it said `start sink "bus":
// nats sink "bus": ...`).
func TestStartErrorNamesTheSinkOnce(t *testing.T) {
	testutil.RequireBPF(t)
	dir := t.TempDir()
	// The spool directory cannot be made: the sink fails as it starts.
	if err := os.WriteFile(filepath.Join(dir, "spool"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, diags := config.Parse("e.hcl", []byte(`
agent {
  data_dir       = "`+dir+`"
  control_socket = ""
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "nats" "bus" { url = "nats://127.0.0.1:1" }
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.nats.bus]
}
`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	a, diags := New(f, Options{Stdout: &testutil.SyncBuffer{}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := a.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("the agent ran with a spool it cannot make: %v", err)
	}
	if n := strings.Count(err.Error(), `"bus"`); n != 1 || !strings.HasPrefix(err.Error(), `start nats sink "bus": `) {
		t.Errorf("error names the sink %d times, want once, as `start nats sink \"bus\": ...`: %v", n, err)
	}
}
