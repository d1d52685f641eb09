package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit: systemd-analyze verify accepts the unit without a
// warning, with ExecStart pointing at a real sluice binary and its
// Documentation at the man page sluice generates.
func TestSystemdUnit(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	bin := buildSluice(t, dir)
	man := filepath.Join(dir, "man", "man1")
	run(t, dir, nil, bin, "man", man)
	unit, err := os.ReadFile("systemd/sluice.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/sluice agent") {
		t.Fatal("the unit does not start /usr/local/bin/sluice agent")
	}
	path := filepath.Join(dir, "sluice.service")
	os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/sluice", bin)), 0o644)
	// verify exits 0 on unknown keys, only warning: any output is a failure.
	if out := run(t, dir, []string{"MANPATH=" + filepath.Dir(man)}, analyze, "verify", path); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
	for _, want := range []string{"ProtectSystem=strict", "Restart=on-failure", "NoNewPrivileges=yes", "CapabilityBoundingSet=" + strings.Join(unitCapabilities(t), " ")} {
		if !strings.Contains(string(unit), want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
}

// unitCapabilities returns the capabilities the unit gives the agent
// (AmbientCapabilities): what docs/operations.md documents and the
// capability test runs the agent with.
func unitCapabilities(t *testing.T) []string {
	t.Helper()
	unit, err := os.ReadFile("systemd/sluice.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "AmbientCapabilities="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatal("the unit has no AmbientCapabilities")
	return nil
}
