package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/synth"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// TestStalledSinkBlockStopsOnSIGTERM runs the agent with when_full =
// "block" into a stdout sink whose pipe nobody reads (its write blocks for
// good) while the synthetic producer runs flat out: the back pressure
// reaches the kernel, where the ring buffer's losses are counted
// (reason kernel), and SIGTERM still stops the agent, soon after its grace
// period, although the sink never returns from its write (it exits 1: the
// sink could not deliver what it held).
func TestStalledSinkBlockStopsOnSIGTERM(t *testing.T) {
	testutil.RequireBPF(t)
	root, err := synth.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.hcl")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
agent {
  data_dir       = %q
  metrics_listen = %q
  shutdown_grace = "2s"
}
source "gadget" "synth" {
  gadget = %q
  params = { target_tgid = %d }
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.synth]
  sinks   = [sink.stdout.out]
  queue { when_full = "block" }
}
`, dir, metrics, filepath.Join(root, synth.Object(64)), os.Getpid())), 0o644)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := exec.Command(sluiceBin, "agent", "--config", cfg)
	var errb testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = pw, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close() // the child holds the write end; nobody reads pr
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()

	get := func(path string) string {
		resp, err := http.Get("http://" + metrics + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return ""
		}
		return string(b)
	}
	waitCLI(t, "the agent to be ready", exited, &errb, func() bool { return get("/readyz") != "" })

	prod := &synth.Producer{}
	ctx, stop := context.WithCancel(context.Background())
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		prod.Run(ctx)
	}()
	kernelLost := regexp.MustCompile(`(?m)^sluice_events_dropped_total\{component="source",name="synth",reason="kernel"\} (\S+)$`)
	lost := func() float64 {
		m := kernelLost.FindStringSubmatch(get("/metrics"))
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	waitCLI(t, "kernel losses to be counted", exited, &errb, func() bool { return lost() > 0 })
	stop()
	<-produced

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		// Exit 1 is right: the sink could not deliver what it held, and
		// says so; what matters is that the agent stops.
		t.Logf("stopped %v after SIGTERM (%v)", time.Since(start).Round(time.Millisecond), err)
		if err != nil && !strings.Contains(errb.String(), "close sink out") {
			t.Errorf("exit after SIGTERM: %v, without saying that the sink could not close; stderr:\n%s", err, errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("still running 60s after SIGTERM (grace 2s), its sink stuck in a write; stderr:\n%s", errb.String())
	}
}

// waitCLI polls cond every 20ms for up to a minute, failing early when
// the agent exits.
func waitCLI(t *testing.T, what string, exited <-chan error, stderr *testutil.SyncBuffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		select {
		case err := <-exited:
			t.Fatalf("the agent exited (%v) waiting for %s; stderr:\n%s", err, what, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stderr:\n%s", what, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
