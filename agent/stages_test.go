package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmstages"
)

// testGuest returns the absolute path of a wasmstages test guest.
func testGuest(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "wasmstages", "testdata", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// parseFile writes src as a config file in dir and parses it, so that
// relative paths in it are taken from dir.
func parseFile(t *testing.T, dir, src string) *config.File {
	t.Helper()
	path := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	f, diags := config.NewParser().ParseFile(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f
}

// TestAgentWasmStages runs the agent with real exec events through two
// pipelines: one whose C filter drops the events of `true` and keeps those
// of `echo`, and one whose guest traps on every batch, sending its batches
// to a dead-letter file sink. The agent keeps running, both outcomes are
// counted, and the compiled code lands in the data directory's cache.
func TestAgentWasmStages(t *testing.T) {
	testutil.RequireBPF(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.Link(testGuest(t, "filter"), filepath.Join(dir, "filter.wasm")); err != nil {
		data, _ := os.ReadFile(testGuest(t, "filter"))
		os.WriteFile(filepath.Join(dir, "filter.wasm"), data, 0o644)
	}
	src := fmt.Sprintf(`
agent {
  data_dir       = %q
  shutdown_grace = "5s"
}
source "gadget" "exec" { gadget = "trace_exec" }
source "gadget" "exec2" { gadget = "trace_exec" }
stage "wasm" "no_true" {
  module = "filter.wasm"   # relative to this file
  params = { comms = ["true"] }
}
stage "wasm" "broken" {
  module      = %q
  on_error    = "dead_letter"
  dead_letter = sink.file.rejects
}
sink "stdout" "out" { format = "json" }
sink "file" "rejects" { path = "rejects.jsonl" }
pipeline "filtered" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.no_true]
  sinks   = [sink.stdout.out]
}
pipeline "failing" {
  sources = [source.gadget.exec2]
  stages  = [stage.wasm.broken]
  sinks   = [sink.stdout.out]
}
`, dataDir, testGuest(t, "trap"))
	f := parseFile(t, dir, src)
	ta := startAgent(t, f, Options{})
	kept := fmt.Sprintf("sluice-stage-kept-%d", rand.Uint32())
	dropped := fmt.Sprintf("sluice-stage-dropped-%d", rand.Uint32())
	ta.waitForOutput("event for echo", 20*time.Second, func() {
		exec.Command("/bin/true", dropped).Run()
		exec.Command("/bin/echo", kept).Run()
	}, func(out string) bool { return strings.Contains(out, kept) })
	out, reg := ta.stop(), ta.reg

	// The filter dropped every event of true, ours and anyone else's, and
	// passed echo's. The trapping stage's batches went to the dead-letter
	// file, never to stdout.
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		if ev["comm"] == "true" {
			t.Errorf("an event of true passed the filter: %s", sc.Text())
		}
		if ev["source"] == "exec2" {
			t.Errorf("an event of the failing pipeline reached stdout: %s", sc.Text())
		}
	}
	rejects, err := os.ReadFile(filepath.Join(dataDir, "rejects.jsonl"))
	if err != nil || !strings.Contains(string(rejects), kept) {
		t.Errorf("the dead-letter file lacks the echo event (%v); it holds %d bytes", err, len(rejects))
	}
	snap := reg.Snapshot()
	if n := snap.Get(pipeline.MetricDropped, "component", "stage", "name", "no_true", "reason", pipeline.ReasonFiltered); n == 0 {
		t.Error("the filter stage counted no filtered events")
	}
	if n := snap.Get(wasmstages.MetricGuest, "component", "stage", "name", "no_true", "counter", "dropped"); n == 0 {
		t.Error("the guest's own counter is zero")
	}
	traps := snap.Get(pipeline.MetricStageErrors, "component", "stage", "name", "broken", "kind", wasmstages.KindTrap)
	dl := snap.Get(pipeline.MetricDropped, "component", "stage", "name", "broken", "reason", pipeline.ReasonDeadLetter)
	if traps == 0 || dl == 0 {
		t.Errorf("the trapping stage counted %v traps and %v dead-lettered events; want both non-zero", traps, dl)
	}
	if entries, _ := filepath.Glob(filepath.Join(dataDir, "wasm-cache", "*", "*")); len(entries) < 2 {
		t.Errorf("the compilation cache holds %d entries, want one per module", len(entries))
	}
}

func TestValidateStages(t *testing.T) {
	dir := t.TempDir()
	src := fmt.Sprintf(`
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
stage "wasm" "typo" {
  module = "drop-com"
}
stage "wasm" "missing" {
  module = "./nowhere.wasm"
}
stage "wasm" "image" {
  module = "oci://localhost:5000/stages/x:v1"
}
stage "wasm" "abi" {
  module = %[1]q
}
stage "wasm" "init" {
  module = %[2]q
  params = { threshold = null }
}
stage "wasm" "tick" {
  module = %[3]q
  tick   = "1s"
}
stage "wasm" "good" {
  module = %[4]q
  params = { comms = ["sh"] }
}
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.typo, stage.wasm.missing, stage.wasm.image, stage.wasm.abi, stage.wasm.init, stage.wasm.tick, stage.wasm.good]
  sinks   = [sink.stdout.out]
}
`, testGuest(t, "abi_version"), testGuest(t, "init_fail"), testGuest(t, "trap"), testGuest(t, "filter"))
	f := parseFile(t, dir, src)
	f.Agent.DataDir = filepath.Join(dir, "data")

	type diag struct {
		Summary   string
		Line, Col int
	}
	collect := func(diags hcl.Diagnostics) []diag {
		var out []diag
		for _, d := range diags {
			if d.Subject == nil {
				t.Fatalf("diagnostic %q has no range", d.Summary)
			}
			out = append(out, diag{d.Summary, d.Subject.Start.Line, d.Subject.Start.Column})
		}
		return out
	}
	// Validate resolves modules only, and so does Check when Validate
	// found errors; checkStages also runs the modules that resolved.
	want := []diag{
		{"Unknown stage module", 5, 12},
		{"Unknown stage module", 8, 12},
		{"Unknown stage module", 11, 12},
	}
	if got := collect(Validate(f)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Validate diagnostics:\n got %v\nwant %v", got, want)
	}
	if got := collect(Check(context.Background(), f, nil)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Check diagnostics:\n got %v\nwant %v", got, want)
	}
	modules, got := resolveStages(f, nil)
	cache := openStageCache(f, slog.New(slog.DiscardHandler))
	defer cache.Close(context.Background())
	got = append(got, checkStages(context.Background(), f, modules, cache)...)
	want = append(want,
		diag{"Stage module does not implement the stage ABI", 14, 12},
		diag{"Stage rejected its params", 18, 12},
		diag{"Stage has no timer", 22, 12},
	)
	if fmt.Sprint(collect(got)) != fmt.Sprint(want) {
		t.Fatalf("checkStages diagnostics:\n got %v\nwant %v", collect(got), want)
	}
	for _, c := range []struct {
		i    int
		want string
	}{
		{0, `did you mean "drop-comm"?`},
		{2, "was not fetched"},
		{3, "sluice_abi_version returned 3"},
		{4, `param "threshold" is required`},
	} {
		if !strings.Contains(got[c.i].Detail, c.want) {
			t.Errorf("diagnostic %d: %q lacks %q", c.i, got[c.i].Detail, c.want)
		}
	}
}

// TestDeadLetterSinkUsers: a pipeline holds one reference to each sink
// value it writes to (a shared sink closes when the last is released), so
// it counts each sink once, whether the pipeline lists it as a sink,
// routes dead letters to it from one stage or several, or both.
func TestDeadLetterSinkUsers(t *testing.T) {
	f := parseFile(t, t.TempDir(), `
source "gadget" "a" { gadget = "trace_exec" }
source "gadget" "b" { gadget = "trace_exec" }
stage "wasm" "a1" {
  module      = "drop-comm"
  on_error    = "dead_letter"
  dead_letter = sink.file.rejects
}
stage "wasm" "a2" {
  module      = "drop-comm"
  on_error    = "dead_letter"
  dead_letter = sink.file.rejects
}
stage "wasm" "b1" {
  module      = "drop-comm"
  on_error    = "dead_letter"
  dead_letter = sink.file.rejects
}
stage "wasm" "b2" {
  module      = "drop-comm"
  on_error    = "dead_letter"
  dead_letter = sink.stdout.out
}
sink "stdout" "out" {}
sink "file" "rejects" { path = "rejects.jsonl" }
pipeline "a" {
  sources = [source.gadget.a]
  stages  = [stage.wasm.a1, stage.wasm.a2]
  sinks   = [sink.stdout.out, sink.file.rejects]
}
pipeline "b" {
  sources = [source.gadget.b]
  stages  = [stage.wasm.b1, stage.wasm.b2]
  sinks   = [sink.stdout.out]
}
`)
	a, diags := New(f, Options{Stdout: &testutil.SyncBuffer{}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	sinks := map[string]*sharedSink{}
	for _, sp := range a.plan.sinks {
		sinks[sp.name] = newSharedSink(nil, sp)
	}
	for _, pp := range a.plan.pipelines {
		got := pipelineSinks(pp, sinks)
		var names []string
		for _, s := range got {
			names = append(names, s.plan.name)
		}
		want := map[string][]string{"a": {"out", "rejects"}, "b": {"out", "rejects"}}[pp.name]
		if !slices.Equal(names, want) {
			t.Errorf("pipeline %s holds references to sinks %v, want %v (each once)", pp.name, names, want)
		}
	}
}
