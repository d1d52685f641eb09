package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources/decode"
)

// writePlainObjects copies plain libbpf test objects into dir.
func writePlainObjects(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		obj, err := gadgets.TestObject("libbpf/" + n)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n+".bpf.o"), obj, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func parseIn(t *testing.T, dir, src string) *config.File {
	t.Helper()
	path := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	f, diags := config.Parse(path, []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f
}

const plainPipeline = `
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.g]
  sinks   = [sink.stdout.out]
}
`

// TestPlainOptionDiagnostics: what a source says about a plain object and
// the object disagree on is reported at the value at fault.
func TestPlainOptionDiagnostics(t *testing.T) {
	dir := t.TempDir()
	writePlainObjects(t, dir, "sigsnoop", "syncsnoop_stripped", "execsnoop")
	for _, tc := range []struct {
		name, body      string
		summary, detail string
		line, col       int
	}{
		{"unknown program", `gadget = "./sigsnoop.bpf.o"
  programs = ["kill_entry", "kill_exti"]`, "Unknown program", `programs names program "kill_exti"`, 3, 29},
		{"unknown skipped program", `gadget = "./sigsnoop.bpf.o"
  skip_programs = ["sigtrace"]`, "Unknown program", `(programs: kill_entry (tracepoint/syscalls/sys_enter_kill)`, 3, 20},
		{"event type not in BTF", `gadget = "./syncsnoop_stripped.bpf.o"
  event_type = "event"`, "Event type not found", "clang drops types used only by locals", 3, 16},
		{"event type file missing", `gadget = "./syncsnoop_stripped.bpf.o"
  event_type_file = "nope.o"`, "Unreadable event type file", "no such file", 3, 21},
		{"hint naming no member", `gadget = "./execsnoop.bpf.o"
  event_type = "event"
  fields {
    argv = { as = "strings", count = "args_count" }
  }`, "Invalid field hint", `fields hint "argv" names no member`, 5, 5},
		{"hint that does not fit", `gadget = "./execsnoop.bpf.o"
  event_type = "event"
  fields {
    pid = { as = "strings" }
  }`, "Invalid field hint", `member pid is a`, 5, 5},
		{"hint count naming no member", `gadget = "./execsnoop.bpf.o"
  event_type = "event"
  fields {
    args = { as = "strings", count = "argc" }
  }`, "Invalid field hint", `count "argc": struct event has no such member`, 5, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := parseIn(t, dir, "source \"gadget\" \"g\" {\n  "+tc.body+"\n}\n"+plainPipeline)
			diags := Validate(f)
			if len(diags) != 1 {
				t.Fatalf("diagnostics: %v, want one", diags)
			}
			d := diags[0]
			if d.Summary != tc.summary || !strings.Contains(d.Detail, tc.detail) || d.Subject == nil || d.Subject.Start.Line != tc.line || d.Subject.Start.Column != tc.col {
				t.Errorf("diagnostic %q: %s at %v; want %q saying %q at %d:%d", d.Summary, d.Detail, d.Subject, tc.summary, tc.detail, tc.line, tc.col)
			}
		})
	}
}

// TestPlainCheckReport: config validate says how each event type was found.
func TestPlainCheckReport(t *testing.T) {
	dir := t.TempDir()
	writePlainObjects(t, dir, "syncsnoop", "syncsnoop_stripped", "syncsnoop.types")
	src := `source "gadget" "g" {
  gadget        = "./syncsnoop.bpf.o"
  skip_programs = ["tracepoint__syscalls__sys_enter_sync_file_range2", "tracepoint__syscalls__sys_enter_arm_sync_file_range"]
}
source "gadget" "h" {
  gadget          = "./syncsnoop_stripped.bpf.o"
  event_type      = "event"
  event_type_file = "syncsnoop.types.bpf.o"
  # Validation refuses what the kernel lacks, as the agent would.
  skip_programs = ["tracepoint__syscalls__sys_enter_sync_file_range2", "tracepoint__syscalls__sys_enter_arm_sync_file_range"]
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.g, source.gadget.h]
  sinks   = [sink.stdout.out]
}
`
	report, diags := CheckReport(context.Background(), parseIn(t, dir, src), nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := []string{
		"source.gadget.g: output events (map events): struct event (32 bytes) by record size, from the object's DWARF",
		"source.gadget.g: programs tracepoint__syscalls__sys_enter_fdatasync, tracepoint__syscalls__sys_enter_fsync, tracepoint__syscalls__sys_enter_msync, tracepoint__syscalls__sys_enter_sync, tracepoint__syscalls__sys_enter_sync_file_range, tracepoint__syscalls__sys_enter_syncfs",
		"source.gadget.h: output events (map events): struct event (32 bytes) by hint, from event_type_file syncsnoop.types.bpf.o (DWARF)",
		"source.gadget.h: programs tracepoint__syscalls__sys_enter_fdatasync, tracepoint__syscalls__sys_enter_fsync, tracepoint__syscalls__sys_enter_msync, tracepoint__syscalls__sys_enter_sync, tracepoint__syscalls__sys_enter_sync_file_range, tracepoint__syscalls__sys_enter_syncfs",
	}
	if !slices.Equal(want, report) {
		t.Errorf("report:\n%s\nwant:\n%s", strings.Join(report, "\n"), strings.Join(want, "\n"))
	}
}

// TestFieldHintKindsAgree: the config's closed list of hint kinds is the
// decoder's.
func TestFieldHintKindsAgree(t *testing.T) {
	if !slices.Equal(config.FieldHintKinds, decode.HintKinds()) {
		t.Errorf("config.FieldHintKinds = %v, decode.HintKinds() = %v", config.FieldHintKinds, decode.HintKinds())
	}
}

// TestAgentRunsPlainObject: the agent runs a plain object as its config
// describes it: programs left out, an undeclared parameter set, a hint
// applied, and the event type's choice logged.
func TestAgentRunsPlainObject(t *testing.T) {
	testutil.RequireBPF(t)
	dir := t.TempDir()
	writePlainObjects(t, dir, "sigsnoop")
	// The test process sends the kills, and it is the agent: keep its
	// own events.
	src := `agent { filter_self = false }
source "gadget" "g" {
  gadget   = "./sigsnoop.bpf.o"
  programs = ["kill_entry", "kill_exit"]
  params   = { filtered_pid = ` + strconv.Itoa(os.Getpid()) + ` }
  fields {
    comm = { rename = "sender" }
  }
}
` + plainPipeline
	f := parseIn(t, dir, src)
	out := &testutil.SyncBuffer{}
	logs := &testutil.SyncBuffer{}
	a, diags := New(f, Options{Stdout: out, Metrics: pipeline.NewRegistry(), Logger: testLogger(logs)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// Kill until the gadget reports it: the first kills may come before
	// it is attached.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := unix.Kill(os.Getpid(), 0); err != nil {
			t.Fatal(err)
		}
		if ev := findJSON(out.String(), func(ev map[string]any) bool { return ev["tpid"] == float64(os.Getpid()) }); ev != nil {
			if _, ok := ev["comm"]; ok || ev["sender"] == nil {
				t.Errorf("event %v: want comm renamed to sender", ev)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no kill reported within 10s; output %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `struct=event size=32 found_by="record size" from="the object's BTF"`) {
		t.Errorf("logs do not say how the event type was found:\n%s", logs.String())
	}
}

func findJSON(out string, match func(map[string]any) bool) map[string]any {
	for _, line := range strings.Split(out, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && match(ev) {
			return ev
		}
	}
	return nil
}

func testLogger(w *testutil.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
