package wasmstages_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/wasmstages"
)

// probe starts the probe guest with grants and returns what it logged.
func probe(t *testing.T, grants wasmstages.Grants, params map[string]any) *logBuffer {
	t.Helper()
	var logs logBuffer
	newStage(t, wasmstages.Config{Name: "probe", Module: guest("probe"), Grants: grants, Params: params, Logger: logs.logger()})
	return &logs
}

func TestWASIWithoutGrants(t *testing.T) {
	t.Setenv("SLUICE_PROBE", "secret")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "probe.txt"), []byte("contents"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := probe(t, wasmstages.Grants{}, map[string]any{"env": "SLUICE_PROBE", "file": filepath.Join(dir, "probe.txt")})

	// Clocks are real: the guest's wall clock is the host's.
	m := regexp.MustCompile(`msg="realtime (\d+)"`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no realtime line; log:\n%s", logs)
	}
	secs, _ := strconv.ParseInt(m[1], 10, 64)
	if d := time.Since(time.Unix(secs, 0)); d < -time.Minute || d > time.Minute {
		t.Errorf("guest wall clock is %s off the host's", d)
	}
	// Random is real: not wazero's deterministic default, so two instances
	// differ.
	rnd := regexp.MustCompile(`msg="random ([0-9a-f]{32})"`)
	first := rnd.FindStringSubmatch(logs.String())
	second := rnd.FindStringSubmatch(probe(t, wasmstages.Grants{}, nil).String())
	if first == nil || second == nil || first[1] == second[1] {
		t.Errorf("random bytes of two instances: %v and %v; want two different values", first, second)
	}
	// Nothing else: no environment, no files, no output.
	for _, want := range []string{"env SLUICE_PROBE unset", "file error"} {
		if len(logs.lines(want)) != 1 {
			t.Errorf("log lacks %q; log:\n%s", want, logs)
		}
	}
	if lines := logs.lines("probe says hello"); len(lines) != 0 {
		t.Errorf("ungranted output reached the log: %q", lines)
	}
}

func TestWASIGrants(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "probe.txt"), []byte("granted contents"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := probe(t, wasmstages.Grants{
		Env:    map[string]string{"SLUICE_PROBE": "granted"},
		Stdout: true,
		Stderr: true,
		Dirs:   []wasmstages.Dir{{Host: dir, Guest: "/data"}},
	}, map[string]any{"env": "SLUICE_PROBE", "file": "/data/probe.txt"})
	for _, want := range [][]string{
		{"env SLUICE_PROBE=granted"},
		{"file granted contents"},
		{"level=INFO", "probe says hello on stdout", "source=stdout", "stage=probe"},
		{"level=WARN", "probe says hello on stderr", "source=stderr", "stage=probe"},
	} {
		if len(logs.lines(want...)) != 1 {
			t.Errorf("log lacks a line with %q; log:\n%s", want, logs)
		}
	}
}

func TestGrantOfMissingDirectory(t *testing.T) {
	_, err := wasmstages.New(t.Context(), wasmstages.Config{Name: "probe", Module: guest("probe"),
		Grants: wasmstages.Grants{Dirs: []wasmstages.Dir{{Host: filepath.Join(t.TempDir(), "missing"), Guest: "/data"}}}})
	if err == nil {
		t.Fatal("New accepted a grant of a directory that does not exist")
	}
}
