package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testutil"
)

var sluiceBin string

func TestMain(m *testing.M) {
	// The load generator of the fleet test is this binary.
	testutil.RunOpenLoopIfAsked()
	dir, err := os.MkdirTemp("", "sluice-cli-test")
	if err != nil {
		panic(err)
	}
	// World-readable so the unprivileged-user test can run the binary.
	os.Chmod(dir, 0o755)
	sluiceBin = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", sluiceBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build sluice: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runSluice(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(sluiceBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestConfigValidateExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hcl")
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(good, []byte(`
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`), 0o644)
	os.WriteFile(bad, []byte(`
source "gadget" "exec" {
  gadget = "trace_exec"
  params = { ignore_failed = "maybe" }
}
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`), 0o644)
	if out, errOut, code := runSluice(t, "config", "validate", good); code != 0 || !strings.Contains(out, "valid") {
		t.Errorf("valid config: exit %d, %s%s", code, out, errOut)
	}
	_, errOut, code := runSluice(t, "config", "validate", bad)
	if code != 1 || !strings.Contains(errOut, "bad.hcl:4:") || !strings.Contains(errOut, "want a bool") {
		t.Errorf("invalid config: exit %d, stderr:\n%s", code, errOut)
	}
}

// TestRunStopsCleanlyOnSignal runs one gadget to the terminal, checks an
// event arrives, then sends SIGTERM: the process must drain and exit 0.
func TestRunStopsCleanlyOnSignal(t *testing.T) {
	testutil.RequireBPF(t)
	cmd := exec.Command(sluiceBin, "run", "trace_exec", "-o", "json")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "sluice-cli-marker") {
		if time.Now().After(deadline) {
			t.Fatalf("no exec event within 10s; stderr:\n%s", errb.String())
		}
		exec.Command("/bin/true", "sluice-cli-marker").Run()
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v; stderr:\n%s", err, errb.String())
	}
	if d := time.Since(start); d > 12*time.Second {
		t.Errorf("took %v to stop; the grace period is 10s", d)
	}
}

// TestRunEndsWhenReaderCloses: `sluice run ... | head -1` ends the run,
// with exit status 0, once head has gone and the next line finds the pipe
// closed; the run must not go on with no reader until interrupted.
func TestRunEndsWhenReaderCloses(t *testing.T) {
	testutil.RequireBPF(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sluiceBin, "run", "trace_exec", "-o", "json")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Read one line (the first event), then close the pipe as head does.
	line := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(r).ReadString('\n')
		r.Close()
		line <- err
	}()
	deadline := time.After(20 * time.Second)
	for {
		exec.Command("/bin/true", "sluice-pipe-marker").Run()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("exit after the reader went away: %v; stderr:\n%s", err, errb.String())
			}
			if l := <-line; l != nil {
				t.Errorf("read the first line: %v", l)
			}
			return
		case <-deadline:
			t.Fatalf("still running 20s after its reader went away; stderr:\n%s", errb.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestRunWithoutPrivileges runs as nobody: the error must say what is
// missing instead of a raw EPERM.
func TestRunWithoutPrivileges(t *testing.T) {
	testutil.RequireBPF(t) // root is needed to switch to another user
	cmd := exec.Command(sluiceBin, "run", "trace_exec", "--timeout", "1s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("run as nobody: %v, want exit 1; stderr:\n%s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "CAP_BPF") || !strings.Contains(errb.String(), "uid 65534") {
		t.Errorf("error does not say what is missing:\n%s", errb.String())
	}
}
