package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testutil"
)

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestImage builds the container image as make image does, twice, and
// checks the builds are byte for byte the same; then loads it into podman
// and runs it: `sluice version`, and a gadget with the privileges
// docs/operations.md documents (CAP_BPF and CAP_PERFMON only, a read-only
// root, the host's PID namespace, tracefs, bpffs and BTF), which must see
// an exec on the host.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	bin := buildSluice(t, dir)
	again := buildSluice(t, t.TempDir())
	if fileDigest(t, bin) != fileDigest(t, again) {
		t.Fatal("two builds of the binary differ")
	}
	mkimage := filepath.Join(dir, "mkimage")
	run(t, "..", nil, "go", "build", "-o", mkimage, "./internal/tools/mkimage")
	tag := fmt.Sprintf("localhost/sluice-test:%d", time.Now().UnixNano())
	var tars []string
	for i := range 2 {
		out := filepath.Join(dir, fmt.Sprintf("image%d.tar", i))
		run(t, dir, nil, mkimage, "-binary", bin, "-arch", runtime.GOARCH, "-tag", tag, "-created", "2026-01-02T03:04:05Z", "-o", out)
		tars = append(tars, out)
	}
	if fileDigest(t, tars[0]) != fileDigest(t, tars[1]) {
		t.Fatal("two builds of the image differ")
	}

	podman := requireTool(t, "podman", "podman runc")
	testutil.RequireRoot(t, "run containers with eBPF privileges")
	run(t, dir, nil, podman, "load", "-i", tars[0])
	t.Cleanup(func() { exec.Command(podman, "rmi", "-f", tag).Run() })
	// runc: crun, podman's default, is not what this machine's kernel
	// runs well; /etc/containers/containers.conf (set by .ci/run) clears
	// the default ulimits the machine refuses.
	base := []string{"run", "--rm", "--runtime", "runc", "--network", "none"}
	if out := run(t, dir, nil, podman, append(base, tag, "version")...); !strings.HasPrefix(out, "sluice v0.0.0-test\n") {
		t.Errorf("sluice version in the image:\n%s", out)
	}

	marker := fmt.Sprintf("sluice-image-%d", time.Now().UnixNano())
	args := append(base,
		"--read-only", "--pid", "host", "--cap-drop", "ALL", "--cap-add", "BPF", "--cap-add", "PERFMON",
		"--security-opt", "seccomp=unconfined",
		"-v", "/sys/kernel/tracing:/sys/kernel/tracing", "-v", "/sys/fs/bpf:/sys/fs/bpf", "-v", "/sys/kernel/btf:/sys/kernel/btf:ro",
		tag, "run", "trace_exec", "-o", "json", "--timeout", "20s")
	cmd := exec.Command(podman, args...)
	var out testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for !strings.Contains(out.String(), marker) {
		select {
		case err := <-done:
			t.Fatalf("the container exited (%v) without seeing the exec:\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
			exec.Command("/bin/true", marker).Run()
		}
	}
	cmd.Process.Signal(os.Interrupt)
	if err := <-done; err != nil {
		t.Errorf("the container did not stop cleanly: %v\n%s", err, out.String())
	}
}
