package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
)

func TestWantsGadgetHelp(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.String("o", "table", "")
	fs.Bool("stats", false, "")
	for _, c := range []struct {
		args   []string
		gadget string
		help   bool
	}{
		{[]string{"trace_open", "--help"}, "trace_open", true},
		{[]string{"-o", "json", "trace_open", "-h"}, "trace_open", true},
		{[]string{"--stats", "-h", "x.bpf.o"}, "x.bpf.o", true},
		{[]string{"--help"}, "", false},
		{[]string{"trace_open"}, "trace_open", false},
		{[]string{"-o=json", "--", "-weird", "--help"}, "-weird", false}, // after --, --help is an argument
	} {
		g, h := wantsGadgetHelp(fs, c.args)
		if h != c.help || (h && g != c.gadget) {
			t.Errorf("wantsGadgetHelp(%q) = %q, %v; want %q, %v", c.args, g, h, c.gadget, c.help)
		}
	}
}

// TestRunGadgetHelp: `sluice run GADGET --help` lists the gadget's
// parameters under the keys its gadget.yaml gives (with the variable they
// set), defaults from gadget.yaml, descriptions, the flags its program
// kinds need, and each output's fields with the ones tables hide.
func TestRunGadgetHelp(t *testing.T) {
	dir := t.TempDir()
	obj, err := gadgets.TestObject("ig_topper")
	if err != nil {
		t.Fatal(err)
	}
	elf := filepath.Join(dir, "ig_topper.bpf.o")
	if err := os.WriteFile(elf, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := `name: ig topper
params:
  ebpf:
    target_tgid:
      key: pid
      defaultValue: "1"
      description: Show only this process
datasources:
  writes:
    fields:
      fd:
        annotations:
          description: The file descriptor
          columns.hidden: true
`
	if err := os.WriteFile(filepath.Join(dir, "ig_topper.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runSluice(t, "run", elf, "--help")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"pid=int (variable target_tgid), default 1: Show only this process",
		"Output writes (struct stats), snapshots",
		"fd (hidden in tables): The file descriptor",
		"bytes_raw (hidden in tables)",
		"Output syncs (struct sync_event), events",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}

// TestRunTopperSnapshots runs the topper with --interval and --runs and
// reads its JSON: the drained rows carry their snapshot's number (1 or 2)
// and size. (The gadget's tracer keeps it running until --timeout.)
func TestRunTopperSnapshots(t *testing.T) {
	testutil.RequireBPF(t)
	obj, err := gadgets.TestObject("ig_topper")
	if err != nil {
		t.Fatal(err)
	}
	elf := filepath.Join(t.TempDir(), "ig_topper.bpf.o")
	if err := os.WriteFile(elf, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runSluice(t, "run", elf, "-o", "json", "--interval", "200ms", "--runs", "2", "--timeout", "1500ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	snapshots := map[float64]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if n, ok := ev["snapshot"].(float64); ok {
			snapshots[n] = true
			if ev["bytes_raw"] == nil || ev["snapshot_rows"] == nil {
				t.Errorf("row %v lacks bytes_raw or snapshot_rows", ev)
			}
		}
	}
	for n := range snapshots {
		if n < 1 || n > 2 {
			t.Errorf("snapshot %v after --runs 2", n)
		}
	}
}
