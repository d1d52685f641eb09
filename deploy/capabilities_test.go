package deploy

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testutil"
)

// capsArg turns the unit's capability names into setpriv's list:
// CAP_BPF CAP_PERFMON -> +bpf,+perfmon.
func capsArg(caps []string) string {
	var out []string
	for _, c := range caps {
		out = append(out, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return strings.Join(out, ",")
}

// asNobody runs sluice as uid/gid 65534 holding exactly caps (ambient, so
// that they survive the exec; the bounding set holds nothing else).
func asNobody(setpriv, bin string, caps []string, args ...string) *exec.Cmd {
	list := capsArg(caps)
	pargs := []string{"--reuid", "65534", "--regid", "65534", "--clear-groups",
		"--bounding-set", "-all," + list, "--inh-caps", "-all," + list, "--ambient-caps", "-all," + list, "--", bin}
	return exec.Command(setpriv, append(pargs, args...)...)
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestUnitCapabilities: a non-root user holding exactly the capabilities
// the systemd unit grants runs the agent on the built-in config (every
// built-in gadget, the uid-to-user Wasm stage, the embedded NATS server
// with JetStream) and sees an exec; without any one of them the agent
// refuses to start and names the one that is missing.
func TestUnitCapabilities(t *testing.T) {
	testutil.RequireBPF(t) // root, to hand capabilities to another user
	setpriv := requireTool(t, "setpriv", "util-linux")
	caps := unitCapabilities(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	bin := buildSluice(t, dir)
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o700)
	os.Chown(data, 65534, 65534)

	def, err := exec.Command(bin, "config", "default").Output()
	if err != nil {
		t.Fatal(err)
	}
	// The built-in config, with a data dir nobody owns, a free port for
	// the NATS server (tests run side by side) and JSON on the terminal.
	cfg := strings.ReplaceAll(string(def), "127.0.0.1:4222", freePort(t))
	cfg = strings.Replace(cfg, "agent {", fmt.Sprintf("agent {\n  data_dir = %q", data), 1)
	cfg = strings.Replace(cfg, `format = "table"`, `format = "json"`, 1)
	cfgPath := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	marker := fmt.Sprintf("sluice-caps-%d", time.Now().UnixNano())
	cmd := asNobody(setpriv, bin, caps, "agent", "--config", cfgPath)
	var out, errOut testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for !strings.Contains(out.String(), marker) {
		select {
		case err := <-done:
			t.Fatalf("the agent exited (%v) with capabilities %v without seeing the exec:\n%s", err, caps, errOut.String())
		case <-time.After(100 * time.Millisecond):
			exec.Command("/bin/true", marker).Run()
		}
	}
	cmd.Process.Signal(os.Interrupt)
	if err := <-done; err != nil {
		t.Errorf("the agent did not stop cleanly: %v\n%s", err, errOut.String())
	}

	for i, left := range caps {
		fewer := append(append([]string{}, caps[:i]...), caps[i+1:]...)
		out, err := asNobody(setpriv, bin, fewer, "run", "trace_exec", "--timeout", "5s").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "missing "+left) {
			t.Errorf("without %s: %v, want an error naming it:\n%s", left, err, out)
		}
	}
}
