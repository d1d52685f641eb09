package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// TestRunHelpWithGadget: `sluice run GADGET --help` (-h, flags anywhere)
// shows the gadget's parameters and fields; without a gadget, and through
// `sluice help run`, the command's own help; a gadget that does not load
// fails the help.
func TestRunHelpWithGadget(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"run", "trace_open", "--help"}, "Parameters (--param NAME=VALUE)", 0},
		{[]string{"run", "-o", "json", "trace_open", "-h"}, "Parameters (--param NAME=VALUE)", 0},
		{[]string{"run", "--stats", "-h", "trace_exec"}, "gadget trace_exec", 0},
		{[]string{"run", "--help"}, "Usage:", 0},
		{[]string{"help", "run"}, "Usage:", 0},
		{[]string{"run", "no_such_gadget", "--help"}, "", 1},
	} {
		out, errOut, code := runInProcess(t, c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("sluice %q: exit %d, want %d and %q in stdout:\n%s%s", c.args, code, c.code, c.want, out, errOut)
		}
		if c.want == "Usage:" && strings.Contains(out, "Parameters (") {
			t.Errorf("sluice %q showed a gadget's help", c.args)
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
		"pid=int (variable target_tgid, pid_t), default 1: Show only this process",
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

// TestRunTopperSnapshots runs the topper with --interval and --runs on a
// process that writes a line every 20ms and reads its JSON: both
// snapshots hold the writer's rows, which carry their snapshot's number
// (1 or 2) and size. (The gadget's tracer keeps it running until --timeout.)
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
	writer := exec.Command("sh", "-c", "while :; do echo x; sleep 0.02; done >/dev/null")
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		writer.Process.Kill()
		writer.Wait()
	}()
	pid := float64(writer.Process.Pid)
	out, stderr, code := runSluice(t, "run", elf, "-o", "json", "--param", fmt.Sprintf("target_tgid=%d", writer.Process.Pid),
		"--interval", "200ms", "--runs", "2", "--timeout", "1500ms")
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
			if ev["pid"] != pid {
				t.Errorf("row %v is not the writer's (pid %v)", ev, pid)
			}
			snapshots[n] = true
			if ev["bytes_raw"] == nil || ev["snapshot_rows"] == nil {
				t.Errorf("row %v lacks bytes_raw or snapshot_rows", ev)
			}
		}
	}
	if len(snapshots) != 2 || !snapshots[1] || !snapshots[2] {
		t.Errorf("snapshots %v of the writer's rows after --runs 2, want 1 and 2:\n%s", snapshots, out)
	}
}
