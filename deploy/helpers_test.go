package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requireTool returns the path of a tool a test runs (systemd-analyze,
// podman). Without it the test skips; in CI (SLUICE_REQUIRE_BPF=1) it
// fails, because .ci/run installs every tool a test needs.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("SLUICE_REQUIRE_BPF") == "1" {
		t.Fatalf("%s is missing and SLUICE_REQUIRE_BPF=1 forbids skipping: .ci/run installs it (apt-get install %s)", name, pkg)
	}
	t.Skipf("skipping: %s is missing (apt-get install %s)", name, pkg)
	return ""
}

// run runs a command and returns its combined output, failing the test on
// an error.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out.String())
	}
	return out.String()
}

// buildSluice builds the static release binary for this machine's
// architecture, as make does (CGO_ENABLED=0, -trimpath), into dir.
func buildSluice(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "sluice")
	run(t, "..", []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -X main.version=v0.0.0-test -X main.commit=test -X main.buildDate=2026-01-02T03:04:05Z",
		"-o", bin, "./cmd/sluice")
	return bin
}
