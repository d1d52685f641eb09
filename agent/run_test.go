package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
)

// testAgent is an agent a test runs in the background until it stops it.
type testAgent struct {
	t      *testing.T
	a      *Agent
	out    *testutil.SyncBuffer // the stdout sinks' output
	reg    *pipeline.Registry
	cancel context.CancelFunc
	errc   chan error
	done   bool
}

// startAgent builds the agent from f and runs it until the test stops it
// (stop, or at cleanup). opts.Stdout and opts.Metrics are filled in.
func startAgent(t *testing.T, f *config.File, opts Options) *testAgent {
	t.Helper()
	ta := &testAgent{t: t, out: &testutil.SyncBuffer{}, reg: pipeline.NewRegistry(), errc: make(chan error, 1)}
	opts.Stdout, opts.Metrics = ta.out, ta.reg
	if f.Agent.ControlSocket == filepath.Join(config.DefaultDataDir, config.DefaultControlSocketName) {
		// Tests of several packages run at once, and an agent may run on
		// this machine: each test agent gets its own socket.
		f.Agent.ControlSocket = filepath.Join(t.TempDir(), "control.sock")
	}
	a, diags := New(f, opts)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ta.a = a
	ctx, cancel := context.WithCancel(context.Background())
	ta.cancel = cancel
	go func() { ta.errc <- a.Run(ctx) }()
	t.Cleanup(func() {
		if !ta.done {
			cancel()
			<-ta.errc
		}
	})
	ta.waitFor("the agent to run its pipelines", 30*time.Second, func() {}, func() bool {
		a.health.mu.Lock()
		defer a.health.mu.Unlock()
		return a.health.ready
	})
	return ta
}

// waitFor calls trigger every 50ms until cond holds, failing the test after
// timeout or when the agent stops early.
func (ta *testAgent) waitFor(what string, timeout time.Duration, trigger func(), cond func() bool) {
	ta.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case err := <-ta.errc:
			ta.done = true
			ta.t.Fatalf("agent stopped before %s: %v; output:\n%s", what, err, ta.out.String())
		default:
		}
		if time.Now().After(deadline) {
			ta.t.Fatalf("no %s within %s; output:\n%s", what, timeout, ta.out.String())
		}
		trigger()
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForOutput is waitFor until the stdout sinks' output satisfies cond.
func (ta *testAgent) waitForOutput(what string, timeout time.Duration, trigger func(), cond func(string) bool) {
	ta.t.Helper()
	ta.waitFor(what, timeout, trigger, func() bool { return cond(ta.out.String()) })
}

// waitForExec execs /bin/true with a fresh marker argument until the
// marker shows in the output, and returns the marker.
func (ta *testAgent) waitForExec(prefix string) string {
	ta.t.Helper()
	return ta.waitForExecOf("/bin/true", prefix)
}

// waitForExecOf is waitForExec with another program.
func (ta *testAgent) waitForExecOf(bin, prefix string) string {
	ta.t.Helper()
	marker := fmt.Sprintf("%s-%d", prefix, rand.Uint32())
	ta.waitForOutput("event for the exec of "+marker, 15*time.Second,
		func() { exec.Command(bin, marker).Run() },
		func(out string) bool { return strings.Contains(out, marker) })
	return marker
}

// stop cancels the agent and checks that it shuts down cleanly and in time.
func (ta *testAgent) stop() string {
	ta.t.Helper()
	ta.cancel()
	ta.done = true
	select {
	case err := <-ta.errc:
		if err != nil {
			ta.t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		ta.t.Fatal("agent did not stop within 30s of cancellation")
	}
	return ta.out.String()
}
