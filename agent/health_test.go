package agent

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testutil"
)

// TestAgentUnreachableNATSSpeaks: an agent whose NATS sink cannot reach its
// server (nothing listens at the URL) says so: /healthz answers degraded
// with the reason and what is spooled, /metrics shows
// sluice_sink_connected 0 and a sink error, and the exit summary tells the
// spooled events from delivered ones instead of calling them all
// delivered.
func TestAgentUnreachableNATSSpeaks(t *testing.T) {
	testutil.RequireBPF(t)
	metrics, nowhere := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	src := fmt.Sprintf(`
agent {
  name           = "cut-off"
  data_dir       = %q
  metrics_listen = %q
  shutdown_grace = "5s"
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "nats" "bus" {
  url = "nats://%s"
  jetstream {
    stream = "SLUICE"
    create = true
  }
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.nats.bus, sink.stdout.out]
}
`, dir, metrics, nowhere)
	f := parseFile(t, dir, src)
	ta := startAgent(t, f, Options{})
	ta.waitForExec("sluice-cut-off")
	spooled := ta.reg.Component("sink", "bus").Counter("sluice_sink_spooled_total", "")
	ta.waitFor("events spooled", 20*time.Second, func() { exec.Command("/bin/true").Run() }, func() bool { return spooled.Value() > 0 })

	get := func(path string, want int) string {
		resp, err := http.Get("http://" + metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
		return string(body)
	}
	health := get("/healthz", http.StatusServiceUnavailable)
	if !strings.HasPrefix(health, "degraded\n") || !strings.Contains(health, "sink bus: ") || !strings.Contains(health, "not connected") ||
		!strings.Contains(health, "connection refused") || !strings.Contains(health, "spooling") {
		t.Errorf("/healthz:\n%s\nwant degraded, naming the sink, why and that it spools", health)
	}
	get("/livez", http.StatusOK) // degraded, yet alive
	m := get("/metrics", http.StatusOK)
	for _, want := range []string{`sluice_sink_connected{component="sink",name="bus"} 0`, `sluice_errors_total{component="sink",name="bus"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	ta.stop()
	s := ta.a.Summary()
	var bus SinkCount
	for _, c := range s.PerSink {
		if c.Sink == "bus" {
			bus = c
		}
	}
	if bus.Written == 0 || bus.Spooled != bus.Written || s.Spooled != bus.Spooled {
		t.Errorf("summary %+v: want every event the bus sink wrote counted as spooled", s)
	}
	if line := s.String(); !strings.Contains(line, "spooled") || !strings.Contains(line, "bus "+fmt.Sprint(bus.Written)+" (") {
		t.Errorf("summary line %q does not tell spooled from delivered", line)
	}
}
