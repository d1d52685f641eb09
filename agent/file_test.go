package agent

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// TestFilePathDiagnostics: a file sink's path with a time verb in a
// directory, or an unknown verb, is a config error at the path attribute.
func TestFilePathDiagnostics(t *testing.T) {
	for _, path := range []string{"/var/log/%Y/events.jsonl", "events-%Q.jsonl"} {
		src := fmt.Sprintf(`source "gadget" "exec" { gadget = "trace_exec" }
sink "file" "audit" {
  path = %q
}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.file.audit]
}
`, path)
		f, diags := config.Parse("f.hcl", []byte(src))
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		diags = Validate(f)
		if len(diags) != 1 || diags[0].Summary != "Invalid file path" {
			t.Fatalf("%s: diagnostics %v, want one Invalid file path", path, diags)
		}
		if r := diags[0].Subject; r == nil || r.Start.Line != 3 || r.Start.Column != 10 {
			t.Errorf("%s: range %v, want f.hcl:3:10", path, r)
		}
	}
}

// TestAgentFileSink runs the agent with a file sink whose relative path
// lands in the data directory, and finds a real exec event in the file.
func TestAgentFileSink(t *testing.T) {
	testutil.RequireBPF(t)
	dataDir := t.TempDir()
	src := fmt.Sprintf(`
agent {
  data_dir       = %q
  shutdown_grace = "5s"
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "file" "audit" {
  path  = "events/exec-%%Y-%%m-%%d.jsonl"
  fsync = "batch"
}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.file.audit]
  batch { max_delay = "5ms" }
}
`, dataDir)
	f, diags := config.Parse("file.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ta := startAgent(t, f, Options{})
	marker := fmt.Sprintf("sluice-file-%d", rand.Uint32())
	path := filepath.Join(dataDir, "events", "exec-"+time.Now().UTC().Format("2006-01-02")+".jsonl")
	ta.waitFor("exec event with "+marker+" in "+path, 15*time.Second,
		func() { exec.Command("/bin/true", marker).Run() },
		func() bool {
			b, err := os.ReadFile(path)
			return err == nil && strings.Contains(string(b), marker)
		})
	ta.stop()
}
