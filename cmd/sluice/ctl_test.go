package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// agentProcess is `sluice agent` run by a test.
type agentProcess struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	socket string
	dir    string
}

const agentConfig = `
agent {
  name           = "cli-agent"
  data_dir       = "%DIR%"
  control_socket = "%DIR%/control.sock"
  shutdown_grace = "10s"
}
source "gadget" "open" {
  gadget = "trace_open"
  params = { target_pid = %PID% }
}
sink "file" "audit" { path = "%FILE%" }
pipeline "p" {
  sources = [source.gadget.open]
  sinks   = [sink.file.audit]
  queue { when_full = "block" }
}
`

func writeAgentConfig(t *testing.T, dir, file string) string {
	t.Helper()
	path := filepath.Join(dir, "agent.hcl")
	text := strings.NewReplacer("%DIR%", dir, "%PID%", strconv.Itoa(os.Getpid()), "%FILE%", file).Replace(agentConfig)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startAgentProcess runs `sluice agent --config` on a config in a fresh
// directory, sending it a SIGHUP during its start-up (once it logs that it
// starts, before its gadgets are loaded) that must not terminate it.
func startAgentProcess(t *testing.T) *agentProcess {
	t.Helper()
	dir := t.TempDir()
	ap := &agentProcess{dir: dir, socket: filepath.Join(dir, "control.sock"), stderr: &testutil.SyncBuffer{}}
	cfg := writeAgentConfig(t, dir, "audit.jsonl")
	ap.cmd = exec.Command(sluiceBin, "agent", "--config", cfg)
	ap.cmd.Stderr = ap.stderr
	if err := ap.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ap.cmd.ProcessState == nil {
			ap.cmd.Process.Kill()
			ap.cmd.Wait()
		}
	})
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(ap.stderr.String(), "sluice agent starting"); {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not start; stderr:\n%s", ap.stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	ap.cmd.Process.Signal(syscall.SIGHUP)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := agent.NewControlClient(ap.socket).WaitReady(ctx); err != nil {
		t.Fatalf("agent not ready: %v; stderr:\n%s", err, ap.stderr.String())
	}
	return ap
}

func (ap *agentProcess) stop(t *testing.T) {
	t.Helper()
	ap.cmd.Process.Signal(syscall.SIGTERM)
	if err := ap.cmd.Wait(); err != nil {
		t.Fatalf("agent exit: %v; stderr:\n%s", err, ap.stderr.String())
	}
}

// TestAgentSIGHUPDuringBurst: SIGHUP reloads the config and never
// terminates the agent (not even one sent before it has started); ten
// SIGHUPs during a burst of opens, half of them with a changed sink, lose
// no event: every open is in the files once, with gap-free numbers.
func TestAgentSIGHUPDuringBurst(t *testing.T) {
	testutil.RequireBPF(t)
	ap := startAgentProcess(t)
	loadDir := t.TempDir()
	var opens atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for range 100 {
				i := opens.Add(1)
				if fd, err := unix.Open(filepath.Join(loadDir, strconv.FormatInt(i%32, 10)), unix.O_RDONLY|unix.O_CREAT, 0o600); err == nil {
					unix.Close(fd)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	c := agent.NewControlClient(ap.socket)
	for i := range 10 {
		if i%2 == 1 {
			writeAgentConfig(t, ap.dir, fmt.Sprintf("audit-%d.jsonl", i))
		}
		before := lastReloadTime(t, c)
		if err := ap.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for lastReloadTime(t, c) == before {
			if time.Now().After(deadline) {
				t.Fatalf("SIGHUP %d: no reload within 20s; stderr:\n%s", i, ap.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		st, _ := c.Status(context.Background())
		if !st.LastReload.OK {
			t.Fatalf("reload %d refused: %s", i, st.LastReload.Rendered)
		}
	}
	close(stop)
	<-done
	n := opens.Load()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, got := readSeqs(t, ap.dir, loadDir)
		if int64(got) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d opens in the files after 20s", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ap.stop(t)
	seqs, got := readSeqs(t, ap.dir, loadDir)
	if int64(got) != n {
		t.Errorf("%d opens of the load in the files, the load made %d", got, n)
	}
	seen := map[uint64]bool{}
	var max uint64
	for _, s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d twice", s)
		}
		seen[s] = true
		max = max2(max, s)
	}
	if uint64(len(seqs)) != max {
		t.Errorf("%d events, last seq %d: the numbers have gaps", len(seqs), max)
	}
}

func max2(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func lastReloadTime(t *testing.T, c *agent.ControlClient) time.Time {
	t.Helper()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.LastReload == nil {
		return time.Time{}
	}
	return st.LastReload.Time
}

// readSeqs reads every audit file in dir: the seqs of the open events, and
// how many of them opened a file in loadDir.
func readSeqs(t *testing.T, dir, loadDir string) ([]uint64, int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "audit*.jsonl"))
	var seqs []uint64
	n := 0
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev struct {
				Type string `json:"type"`
				Seq  uint64 `json:"seq"`
				Path string `json:"path"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Type == "loss" {
				continue // a line cut by the running writer, or a loss record
			}
			seqs = append(seqs, ev.Seq)
			if strings.HasPrefix(ev.Path, loadDir+"/") {
				n++
			}
		}
	}
	return seqs, n
}

// TestCtlCommands runs each `sluice ctl` command against a running agent.
func TestCtlCommands(t *testing.T) {
	testutil.RequireBPF(t)
	ap := startAgentProcess(t)
	sock := "--socket=" + ap.socket

	out, errOut, code := runSluice(t, "ctl", sock, "status", "-o", "json")
	var st agent.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Agent != "cli-agent" || len(st.Pipelines) != 1 {
		t.Fatalf("ctl status -o json: exit %d, %s%s", code, out, errOut)
	}
	out, _, code = runSluice(t, "ctl", sock, "status")
	for _, want := range []string{"agent cli-agent", "pipeline p  running", "source  open", "sink    audit"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("ctl status lacks %q:\n%s", want, out)
		}
	}
	// ctl finds the socket through the agent's config file too.
	if out, _, code := runSluice(t, "ctl", "--config", filepath.Join(ap.dir, "agent.hcl"), "status"); code != 0 || !strings.Contains(out, "cli-agent") {
		t.Errorf("ctl --config status: exit %d\n%s", code, out)
	}

	// A tap limited to 5 events, made by the opens of this test.
	tapDone := make(chan struct{})
	var tapOut string
	var tapCode int
	go func() {
		defer close(tapDone)
		tapOut, _, tapCode = runSluice(t, "ctl", sock, "tap", "source.open", "--limit", "5")
	}()
	marker := filepath.Join(t.TempDir(), "m")
	for waited := 0; ; waited++ {
		select {
		case <-tapDone:
		case <-time.After(50 * time.Millisecond):
			if fd, err := unix.Open(marker, unix.O_RDONLY|unix.O_CREAT, 0o600); err == nil {
				unix.Close(fd)
			}
			if waited > 300 {
				t.Fatal("ctl tap --limit 5 did not end within 15s")
			}
			continue
		}
		break
	}
	if lines := strings.Split(strings.TrimSpace(tapOut), "\n"); tapCode != 0 || len(lines) != 5 || !strings.Contains(lines[0], `"source":"open"`) {
		t.Errorf("ctl tap: exit %d, %d lines:\n%s", tapCode, len(lines), tapOut)
	}

	out, _, code = runSluice(t, "ctl", sock, "top", "-n", "1", "--interval", "200ms", "-o", "json")
	var frame topFrame
	if code != 0 || json.Unmarshal([]byte(out), &frame) != nil || len(frame.Rows) != 3 {
		t.Errorf("ctl top -n 1 -o json: exit %d\n%s", code, out)
	}

	// A config with an error: the reload is refused, exit 1, and the
	// diagnostic says where.
	cfg := filepath.Join(ap.dir, "agent.hcl")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(b, []byte(`when_full = "block"`), []byte(`when_full = "sometimes"`), 1), 0o644)
	line := bytes.Count(b[:bytes.Index(b, []byte("when_full"))], []byte("\n")) + 1
	out, errOut, code = runSluice(t, "ctl", sock, "reload")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("%s:%d:", cfg, line)) || !strings.Contains(out, "reload refused") {
		t.Errorf("ctl reload of a broken config: exit %d\n%s%s", code, out, errOut)
	}
	os.WriteFile(cfg, b, 0o644)
	out, _, code = runSluice(t, "ctl", sock, "reload")
	if code != 0 || !strings.Contains(out, "nothing changed") {
		t.Errorf("ctl reload of an unchanged config: exit %d\n%s", code, out)
	}
	ap.stop(t)
	if _, errOut, code := runSluice(t, "ctl", sock, "status"); code != 1 || !strings.Contains(errOut, "no agent is listening") {
		t.Errorf("ctl status without an agent: exit %d, %s", code, errOut)
	}
}

// TestConfigValidateInterrupted: an interrupt (the signal context) stops
// `config validate`, which says so instead of calling the config valid.
func TestConfigValidateInterrupted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.hcl")
	os.WriteFile(path, []byte(`
source "gadget" "exec" { gadget = "trace_exec" }
stage "wasm" "f" { module = "drop-comm" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.f]
  sinks   = [sink.stdout.out]
}
`), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"config", "validate", path}, strings.NewReader(""), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("validate with an interrupt: exit %d, stderr %q; stdout %q", code, stderr.String(), stdout.String())
	}
	if strings.Contains(stdout.String(), "valid") {
		t.Errorf("an interrupted validate said the config is valid: %q", stdout.String())
	}
}
