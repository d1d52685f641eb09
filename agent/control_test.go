package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
)

const controlConfig = `
agent {
  name           = "ctl-host"
  data_dir       = "%DIR%"
  control_socket = "%DIR%/control.sock"
  metrics_listen = "%METRICS%"
}
source "gadget" "exec" { gadget = "trace_exec" }
stage "wasm" "filter" {
  module = "drop-comm"
  params = { comms = ["true"] }
}
sink "stdout" "console" { format = "json" }
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.filter]
  sinks   = [sink.stdout.console]
}
`

func startControlled(t *testing.T) (*reloadable, *ControlClient, string) {
	t.Helper()
	metrics := freeAddr(t)
	r := startReloadable(t, strings.ReplaceAll(controlConfig, "%METRICS%", metrics))
	return r, NewControlClient(filepath.Join(r.dir, "control.sock")), metrics
}

// TestControlSocket: the control API listens on a unix socket only its
// owner may use (mode 0600), answers status with the agent, its
// components, what they run and their counters, and refuses a second
// agent on the same socket; the socket goes away with the agent.
func TestControlSocket(t *testing.T) {
	testutil.RequireBPF(t)
	r, c, _ := startControlled(t)
	st, err := os.Stat(c.Socket())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Type() != os.ModeSocket || st.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", st.Mode())
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Getuid() {
		t.Errorf("control socket owned by uid %d, want the agent's %d", uid, os.Getuid())
	}
	r.waitForExecOf("/bin/echo", "status")
	status, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if status.Agent != "ctl-host" || !status.Ready || status.Health != "ok" || status.PID != os.Getpid() || len(status.Pipelines) != 1 {
		t.Fatalf("status %+v", status)
	}
	p := status.Pipelines[0]
	if p.Name != "p" || p.State != "running" || len(p.Sources) != 1 || len(p.Stages) != 1 || len(p.Sinks) != 1 {
		t.Fatalf("pipeline status %+v", p)
	}
	src, stage, sink := p.Sources[0], p.Stages[0], p.Sinks[0]
	if src.Type != "trace_exec" || len(src.Digest) != 64 || src.Counts.Received == 0 || src.Seq == 0 || src.State != "running" {
		t.Errorf("source status %+v", src)
	}
	if stage.Ref != "drop-comm" || len(stage.Digest) != 64 || stage.Counts.Received == 0 {
		t.Errorf("stage status %+v", stage)
	}
	if sink.Type != "stdout" || sink.Queue == nil || sink.Queue.MaxEvents == 0 || sink.Counts.Sent == 0 {
		t.Errorf("sink status %+v", sink)
	}
	if p.Queue.MaxEvents != config.DefaultQueueMaxEvents || p.Queue.Policy != "block" {
		t.Errorf("edge queue status %+v", p.Queue)
	}

	if _, err := listenControl(c.Socket()); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("a second listener on a live socket: %v, want an error naming the other agent", err)
	}
	r.stop()
	if _, err := os.Stat(c.Socket()); !os.IsNotExist(err) {
		t.Errorf("control socket still there after the agent stopped: %v", err)
	}
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "no agent is listening") {
		t.Errorf("status of a stopped agent: %v", err)
	}
}

// TestControlSocketStale: a socket left by an agent that died is
// replaced.
func TestControlSocketStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody listens
	ln2, err := listenControl(path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	ln2.Close()
}

// TestTapAfterStage: a tap after a stage sees the events the stage let
// through and none it dropped; one before it sees both.
func TestTapAfterStage(t *testing.T) {
	testutil.RequireBPF(t)
	r, c, _ := startControlled(t)
	marker := fmt.Sprintf("tap-%d", time.Now().UnixNano())
	type seen struct {
		mu          sync.Mutex
		trueMarker  bool // an exec of true with the marker
		echoMarker  bool
		droppedComm []string
	}
	var in, out seen
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	tap := func(edge string, s *seen) {
		wg.Go(func() {
			err := c.Tap(ctx, TapRequest{Edge: edge}, func(l TapLine) error {
				if l.Event == nil {
					return nil
				}
				ev := string(l.Event)
				s.mu.Lock()
				defer s.mu.Unlock()
				if strings.Contains(ev, `"comm":"true"`) {
					s.droppedComm = append(s.droppedComm, ev)
					if strings.Contains(ev, marker) {
						s.trueMarker = true
					}
				}
				if strings.Contains(ev, `"comm":"echo"`) && strings.Contains(ev, marker) {
					s.echoMarker = true
				}
				return nil
			})
			if err != nil {
				t.Errorf("tap %s: %v", edge, err)
			}
		})
	}
	tap("stage.filter.out", &out)
	tap("stage.filter.in", &in)
	r.waitFor("both taps to see the marked execs", 15*time.Second, func() {
		exec.Command("/bin/true", marker).Run()
		exec.Command("/bin/echo", marker).Run()
	}, func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		out.mu.Lock()
		defer out.mu.Unlock()
		return in.trueMarker && in.echoMarker && out.echoMarker
	})
	cancel()
	wg.Wait()
	if len(out.droppedComm) > 0 {
		t.Errorf("the tap after the stage saw %d events the stage drops, e.g. %s", len(out.droppedComm), out.droppedComm[0])
	}
	if err := c.Tap(context.Background(), TapRequest{Edge: "stage.nope.out"}, func(TapLine) error { return nil }); err == nil || !strings.Contains(err.Error(), "stage.filter.out") {
		t.Errorf("tap of an unknown edge: %v, want an error listing the edges", err)
	}
	// A limited tap ends by itself.
	n := 0
	done := make(chan error, 1)
	go func() {
		done <- c.Tap(context.Background(), TapRequest{Edge: "source.exec", Limit: 3}, func(l TapLine) error {
			if l.Event != nil {
				n++
			}
			return nil
		})
	}()
	r.waitFor("the limited tap to end", 15*time.Second, func() { exec.Command("/bin/true").Run() }, func() bool {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return true
		default:
			return false
		}
	})
	if n != 3 {
		t.Errorf("a tap limited to 3 events delivered %d", n)
	}
	r.stop()
}

func httpStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSourceRestart: a gadget whose reader fails while it runs is reported
// at once (log, sluice_errors_total, /healthz degraded, status failing),
// loaded again after a backoff, and its events go on with the next
// sequence numbers.
func TestSourceRestart(t *testing.T) {
	testutil.RequireBPF(t)
	r, c, metrics := startControlled(t)
	if code, body := httpStatus(t, "http://"+metrics+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz before the failure: %d %s", code, body)
	}
	if code, _ := httpStatus(t, "http://"+metrics+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz of a running agent: %d", code)
	}
	r.waitForExecOf("/bin/echo", "before-failure")
	g := r.a.liveGadget("exec")
	seqBefore := r.a.seqOf("exec").Load()
	// Close the gadget under the running pipeline: its readers fail.
	g.Close()
	r.waitFor("/healthz to report the failing source", 10*time.Second, func() {}, func() bool {
		code, body := httpStatus(t, "http://"+metrics+"/healthz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "source exec: ") && strings.Contains(body, "closed while running")
	})
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if src := st.Pipelines[0].Sources[0]; src.State != "failing" || !strings.Contains(src.Error, "closed while running") || st.Health != "degraded" {
		t.Errorf("status during the failure: health %s, source %+v", st.Health, src)
	}
	if n := r.reg.Snapshot().Get(pipeline.MetricErrors, "component", "source", "name", "exec"); n != 1 {
		t.Errorf("sluice_errors_total for the source = %v during the failure, want 1", n)
	}
	r.waitFor("the source to restart", 15*time.Second, func() {}, func() bool {
		ng := r.a.liveGadget("exec")
		return ng != nil && ng != g
	})
	marker := r.waitForExecOf("/bin/echo", "after-restart")
	if code, body := httpStatus(t, "http://"+metrics+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after the restart: %d %s", code, body)
	}
	if n := r.reg.Snapshot().Get(MetricSourceRestarts, "component", "source", "name", "exec"); n != 1 {
		t.Errorf("%s = %v, want 1", MetricSourceRestarts, n)
	}
	out := r.stop()
	// The numbers went on: the marked event after the restart has a seq
	// above every one before the failure.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, marker) {
			var seq uint64
			fmt.Sscanf(line[strings.Index(line, `"seq":`)+6:], "%d", &seq)
			if seq <= seqBefore {
				t.Errorf("event after the restart has seq %d; before the failure it was at %d", seq, seqBefore)
			}
			return
		}
	}
	t.Error("the marked exec is not in the output")
}

// TestControlSocketPathTooLong: a socket path longer than a unix socket
// can have is a config error at the attribute, not a failure at start.
func TestControlSocketPathTooLong(t *testing.T) {
	long := "/tmp/" + strings.Repeat("d", 100) + "/control.sock"
	src := fmt.Sprintf(`agent {
  control_socket = %q
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`, long)
	f, diags := config.Parse("c.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	diags = Validate(f)
	if len(diags) != 1 || diags[0].Summary != "Control socket path too long" || diags[0].Subject == nil || diags[0].Subject.Start.Line != 2 {
		t.Errorf("diagnostics %v, want one at c.hcl:2", diags)
	}
	if _, diags := New(f, Options{}); !diags.HasErrors() {
		t.Error("New accepted the long socket path")
	}
}
