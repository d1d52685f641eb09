package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// agentProc is one `sluice agent` process under measurement: its own
// data directory, config, metrics port and output files.
type agentProc struct {
	cmd     *exec.Cmd
	dir     string
	metrics string // host:port of /metrics and /readyz
	started time.Time
	exited  chan struct{}
	err     error // Wait's, once exited is closed
	stdout  *os.File
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// agentMaxProcs, when positive, is the agent { max_procs } of every agent
// the bench starts (-max-procs).
var agentMaxProcs int

// withMaxProcs sets max_procs in config's agent block, adding one when
// it has none.
func withMaxProcs(config string, n int) string {
	line := fmt.Sprintf("  max_procs = %d\n", n)
	if strings.Contains(config, "agent {\n") {
		return strings.Replace(config, "agent {\n", "agent {\n"+line, 1)
	}
	return "agent {\n" + line + "}\n" + config
}

// startAgent writes config into dir and starts the agent on it; its
// stdout goes to dir/stdout (appended, so that the bench can truncate it
// while the agent writes) and its stderr to dir/agent.log.
func startAgent(sluice, dir, metricsAddr, config string, extraArgs ...string) (*agentProc, error) {
	if agentMaxProcs > 0 {
		config = withMaxProcs(config, agentMaxProcs)
	}
	if err := os.WriteFile(filepath.Join(dir, "agent.hcl"), []byte(config), 0o644); err != nil {
		return nil, err
	}
	stdout, err := os.OpenFile(filepath.Join(dir, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	stderr, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		stdout.Close()
		return nil, err
	}
	defer stderr.Close()
	args := append([]string{"agent", "--config", filepath.Join(dir, "agent.hcl")}, extraArgs...)
	cmd := exec.Command(sluice, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	a := &agentProc{cmd: cmd, dir: dir, metrics: metricsAddr, stdout: stdout, exited: make(chan struct{})}
	a.started = time.Now()
	if err := cmd.Start(); err != nil {
		stdout.Close()
		return nil, fmt.Errorf("start agent: %w", err)
	}
	go func() {
		a.err = cmd.Wait()
		close(a.exited)
	}()
	return a, nil
}

func (a *agentProc) pid() int { return a.cmd.Process.Pid }

// logTail is the end of the agent's log, for error messages.
func (a *agentProc) logTail() string {
	b, _ := os.ReadFile(filepath.Join(a.dir, "agent.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// waitReady waits until /readyz answers 200 (every pipeline runs).
func (a *agentProc) waitReady(timeout time.Duration) error {
	c := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-a.exited:
			return fmt.Errorf("agent exited (%v) before it was ready:\n%s", a.err, a.logTail())
		default:
		}
		if resp, err := c.Get("http://" + a.metrics + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent not ready after %s:\n%s", timeout, a.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the agent to exit, killing it after
// timeout; it returns how long the clean stop took.
func (a *agentProc) stop(timeout time.Duration) (time.Duration, error) {
	defer a.stdout.Close()
	t0 := time.Now()
	select {
	case <-a.exited:
		return 0, fmt.Errorf("agent had exited (%v):\n%s", a.err, a.logTail())
	default:
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
		took := time.Since(t0)
		var ee *exec.ExitError
		if a.err != nil && !errors.As(a.err, &ee) {
			return took, a.err
		}
		if a.err != nil {
			return took, fmt.Errorf("agent exited with %v:\n%s", a.err, a.logTail())
		}
		return took, nil
	case <-time.After(timeout):
		a.cmd.Process.Kill()
		<-a.exited
		return time.Since(t0), fmt.Errorf("agent did not stop within %s of SIGTERM; killed", timeout)
	}
}
