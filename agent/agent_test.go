package agent

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestAgentEndToEnd runs the agent on an HCL config with a real gadget,
// execs a process, and checks the event reaches the sink, the metrics
// endpoint counts it, and shutdown is clean with every event accounted for.
func TestAgentEndToEnd(t *testing.T) {
	testutil.RequireBPF(t)
	addr := freeAddr(t)
	src := fmt.Sprintf(`
agent {
  name           = "e2e-host"
  metrics_listen = %q
  shutdown_grace = "5s"
}
source "gadget" "exec" {
  gadget = "trace_exec"
}
sink "stdout" "out" { format = "json" }
pipeline "security" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
  queue { when_full = "drop_oldest" }
}
`, addr)
	f, diags := config.Parse("e2e.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ta := startAgent(t, f, Options{})
	ta.waitForExec("sluice-e2e")
	out := ta.out
	for _, want := range []string{`"host":"e2e-host"`, `"source":"exec"`, `"gadget":"trace_exec"`, `"comm":"true"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %s", want)
		}
	}

	families := scrapeMetrics(t, "http://"+addr+"/metrics") // lints it too
	if n, _ := seriesValue(families, "sluice_events_received_total", "component", "source", "name", "exec"); n == 0 {
		t.Errorf("metrics lack the source counter: %v", families["sluice_events_received_total"])
	}

	ta.stop()
	s := ta.a.Summary()
	var dropped uint64
	for _, n := range s.Dropped {
		dropped += n
	}
	if s.Received == 0 || s.Received != s.Delivered+dropped {
		t.Errorf("summary %v: received must equal delivered + dropped", s)
	}
	if lines := strings.Count(out.String(), "\n"); uint64(lines) != s.Delivered {
		t.Errorf("sink wrote %d lines, summary says %d delivered", lines, s.Delivered)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("metrics endpoint still listening after shutdown")
	}
}

func TestValidateGadgetsAndParams(t *testing.T) {
	src := `
source "gadget" "exec" { gadget = "trace_exce" }
source "gadget" "open" {
  gadget = "trace_open"
  params = { target_pid = "abc", nope = 1 }
}
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec, source.gadget.open]
  sinks   = [sink.stdout.out]
}
pipeline "q" {
  sources = [source.gadget.open]
  sinks   = [sink.stdout.out]
}
`
	f, diags := config.Parse("v.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := Validate(f)
	want := []struct {
		summary string
		line    int
		column  int
	}{
		{"Unknown gadget", 2, 35},
		{"Invalid gadget parameter", 5, 27},
		{"Unknown gadget parameter", 5, 34},
		{"Source used by several pipelines", 13, 14},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%v", len(got), len(want), got)
	}
	for i, w := range want {
		d := got[i]
		if d.Summary != w.summary || d.Subject == nil || (i == 0 && !strings.Contains(d.Detail, `did you mean "trace_exec"`)) || d.Subject.Start.Line != w.line || d.Subject.Start.Column != w.column {
			t.Errorf("diagnostic %d = %q at %v, want %q at %d:%d", i, d.Summary, d.Subject, w.summary, w.line, w.column)
		}
	}
}
