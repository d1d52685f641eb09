package agent

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/wasmbpf"
)

func testApp(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "wasmbpf", "testdata", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// jsonEvents parses the stdout sinks' JSON lines.
func jsonEvents(out string) []map[string]any {
	var evs []map[string]any
	for _, l := range strings.Split(out, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(l), &ev) == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

// appLinks returns the links this process holds whose programs are called
// handle_exec or handle_exit (the wasm-bpf test applications'). Only this
// process's: go test runs packages side by side, and another package's
// test may attach the same applications meanwhile (TestAgentWasmBPF once
// found such a pair still attached after its agent stopped).
func appLinks(t *testing.T) []link.ID {
	t.Helper()
	held := testutil.HeldLinks(t)
	var ids []link.ID
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue
		}
		prog, err := ebpf.NewProgramFromID(info.Program)
		if err != nil {
			continue
		}
		pi, err := prog.Info()
		prog.Close()
		if err == nil && (pi.Name == "handle_exec" || pi.Name == "handle_exit") && held[it.ID] {
			ids = append(ids, it.ID)
		}
	}
	return ids
}

// TestAgentWasmBPF runs wasm-bpf applications as sources of an agent: the
// records of execsnoop.wasm arrive decoded in the sink with their
// envelope, the guest's printed lines in the agent's log; a hostile guest
// beside it (its callback traps) is contained, counted and restarted while
// the other keeps delivering; a reload that changes the application's
// args replaces the source with its numbers going on; and stopping the
// agent detaches every program the applications attached.
func TestAgentWasmBPF(t *testing.T) {
	testutil.RequireBPF(t)
	dir := t.TempDir()
	pid := os.Getpid()
	cfgText := func(args string) string {
		return fmt.Sprintf(`
agent {
  data_dir       = %q
  control_socket = ""
}
source "wasm_bpf" "execs" {
  module = %q
  args   = %s
}
source "wasm_bpf" "hostile" {
  module = %q
  args   = ["-p", "%d"]
}
source "wasm_bpf" "spinner" {
  module = %q
  args   = ["-p", "%d"]
}
source "wasm_bpf" "rejected" { module = %q }
source "wasm_bpf" "pointers" { module = %q }
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.wasm_bpf.execs, source.wasm_bpf.hostile, source.wasm_bpf.spinner, source.wasm_bpf.rejected, source.wasm_bpf.pointers]
  sinks   = [sink.stdout.out]
}
`, filepath.Join(dir, "data"), testApp(t, "execsnoop"), args, testApp(t, "trap_callback"), pid,
			testApp(t, "no_poll"), pid, testApp(t, "verifier"), testApp(t, "bad_pointers"))
	}
	path := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(path, []byte(cfgText(fmt.Sprintf(`["-p", "%d"]`, pid))), 0o644); err != nil {
		t.Fatal(err)
	}
	f, diags := config.NewParser().ParseFile(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	before := appLinks(t)
	logs := &testutil.SyncBuffer{}
	ta := startAgent(t, f, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Load: LoadFile(path, FetchOptions{})})

	execOf := func(source string, after uint64) map[string]any {
		t.Helper()
		var got map[string]any
		ta.waitFor("an exec event of source "+source, 20*time.Second, func() { exec.Command("/bin/true").Run() }, func() bool {
			for _, ev := range jsonEvents(ta.out.String()) {
				if ev["source"] == source && ev["comm"] == "true" && ev["exit_event"] == false && uint64(ev["seq"].(float64)) > after {
					got = ev
					return true
				}
			}
			return false
		})
		return got
	}
	ev := execOf("execs", 0)
	if ev["gadget"] != "execsnoop" || int(ev["ppid"].(float64)) != pid || !strings.HasSuffix(ev["filename"].(string), "/true") || ev["host"] == "" || ev["time"] == "" {
		t.Errorf("exec event = %v", ev)
	}
	ta.waitFor("the guest's printed line in the log", 10*time.Second, func() {}, func() bool {
		return strings.Contains(logs.String(), "EXEC  true") && strings.Contains(logs.String(), "source=execs")
	})

	// The hostile guest: its record was emitted before its callback
	// trapped; the trap is counted and the source restarted.
	execOf("hostile", 0)
	ta.waitFor("the trap counted and the hostile source restarted", 20*time.Second, func() { exec.Command("/bin/true").Run() }, func() bool {
		s := ta.reg.Snapshot()
		return s.Get(wasmbpf.MetricGuestErrors, "component", "source", "name", "hostile", "kind", wasmbpf.KindCallback) >= 1 &&
			s.Get(MetricSourceRestarts, "component", "source", "name", "hostile") >= 1
	})
	// The other hostile guests: one whose object the verifier rejects
	// (counted, restarted), one passing bad pointers everywhere (each
	// refused and counted; it then exits 0 and its source finishes), one
	// that spins without polling (stopped with the agent, below).
	ta.waitFor("the verifier rejection counted and restarted, the bad pointers refused", 20*time.Second, func() {}, func() bool {
		s := ta.reg.Snapshot()
		var refused float64
		for k, v := range s {
			if strings.HasPrefix(k, wasmbpf.MetricRefusedCalls+"{") && strings.Contains(k, `name="pointers"`) {
				refused += v
			}
		}
		return s.Get(wasmbpf.MetricGuestErrors, "component", "source", "name", "rejected", "kind", wasmbpf.KindLoad) >= 1 &&
			s.Get(MetricSourceRestarts, "component", "source", "name", "rejected") >= 1 && refused >= 20 &&
			regexp.MustCompile(`bad_pointers: (\d+) of (\d+) calls refused`).MatchString(logs.String())
	})
	if !strings.Contains(logs.String(), "the verifier rejected the program") {
		t.Error("the verifier's rejection is not in the log")
	}
	if m := regexp.MustCompile(`bad_pointers: (\d+) of (\d+) calls refused`).FindStringSubmatch(logs.String()); m == nil || m[1] != m[2] || strings.Contains(logs.String(), "was accepted") {
		t.Errorf("a bad call was accepted: %v", m)
	}
	// ... and the first source went on.
	seq := uint64(ev["seq"].(float64))
	ev = execOf("execs", seq)
	seq = uint64(ev["seq"].(float64))

	// A reload with other args replaces the source; its numbers go on.
	if err := os.WriteFile(path, []byte(cfgText(fmt.Sprintf(`["-p", "%d", "-d", "0"]`, pid))), 0o644); err != nil {
		t.Fatal(err)
	}
	res := (&reloadable{testAgent: ta, path: path}).reload(t)
	if !res.OK || !slices.ContainsFunc(res.Changes, func(c Change) bool { return c.Kind == "source" && c.Name == "execs" && c.Action == "replaced" }) {
		t.Fatalf("reload = %+v; want source execs replaced", res)
	}
	if slices.ContainsFunc(res.Changes, func(c Change) bool { return c.Name == "hostile" }) {
		t.Errorf("reload = %+v; the unchanged source was touched", res)
	}
	execOf("execs", seq)
	ta.waitFor("the new instance's args in the log", 10*time.Second, func() {}, func() bool {
		return strings.Contains(logs.String(), `args="[-p `+fmt.Sprint(pid)+` -d 0]"`)
	})
	// The source whose application finished (exit 0) was kept by the
	// reload; it stays finished instead of running its application again.
	if n := strings.Count(logs.String(), "calls refused"); n != 1 {
		t.Errorf("the finished application ran %d times", n)
	}

	ours := slices.DeleteFunc(appLinks(t), func(id link.ID) bool { return slices.Contains(before, id) })
	if len(ours) == 0 {
		t.Fatal("no links of the applications found while they run")
	}
	ta.stop()
	for _, id := range ours {
		if l, err := link.NewFromID(id); err == nil {
			l.Close()
			t.Errorf("link %d is still attached after the agent stopped", id)
		}
	}
}

// TestValidateWasmBPF: validation reads the module (no privileges): a
// Wasm stage in a wasm_bpf block and a missing file are errors at the
// module value; an application's outputs become the sink's schemas.
func TestValidateWasmBPF(t *testing.T) {
	stage, err := filepath.Abs(filepath.Join("..", "wasmstages", "testdata", "filter.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`
source "wasm_bpf" "app" {
  module = %q
  emit   = "both"
}
source "wasm_bpf" "stage" { module = %q }
source "wasm_bpf" "missing" { module = "nope.wasm" }
sink "stdout" "out" { format = "table" }
pipeline "p" {
  sources = [source.wasm_bpf.app, source.wasm_bpf.stage, source.wasm_bpf.missing]
  sinks   = [sink.stdout.out]
}
`, testApp(t, "execsnoop"), stage)
	f, diags := config.Parse("v.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	diags = Validate(f)
	var summaries []string
	for _, d := range diags {
		summaries = append(summaries, fmt.Sprintf("%s at line %d", d.Summary, d.Subject.Start.Line))
	}
	want := []string{"Not a wasm-bpf application at line 6", "Unknown wasm-bpf application at line 7"}
	if !slices.Equal(summaries, want) {
		t.Errorf("diagnostics = %q; want %q", summaries, want)
	}
	apps, _ := resolveWasmBPF(f, nil)
	if len(apps) != 1 {
		t.Fatalf("resolved %d applications", len(apps))
	}
	var types []string
	for _, sc := range apps[0].schemas {
		types = append(types, sc.Gadget+"/"+sc.Type)
	}
	if !slices.Equal(types, []string{"execsnoop/event", "execsnoop/line"}) {
		t.Errorf("schemas = %v", types)
	}
}
