package sources

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAttachKinds loads a gadget with one program per non-tracepoint attach
// kind this kernel supports (raw_tp, tp_btf, uprobe, uretprobe) and checks
// that each one fires for what the test does itself.
func TestAttachKinds(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	_, c := startGadget(t, "attach_kinds", testObject(t, "attach_kinds"), ParseOptions{}, map[string]string{"target_pid": self})

	unix.Getppid()
	c.waitFor(t, "raw_tp/sys_enter for getppid", func(ev map[string]any) bool {
		return num(ev["kind"]) == 1 && num(ev["pid"]) == int64(os.Getpid())
	})

	// echo is dynamically linked against libc and calls setlocale(3).
	echo, err := exec.LookPath("echo")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(echo, "sluice")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	child := int64(cmd.Process.Pid)
	for kind, what := range map[int64]string{
		2: "tp_btf/sched_process_exec",
		3: "uprobe/libc:__libc_start_main",
		4: "uretprobe/libc:setlocale",
	} {
		ev := c.waitFor(t, what, func(ev map[string]any) bool { return num(ev["kind"]) == kind && num(ev["pid"]) == child })
		if ev["comm"] != "echo" {
			t.Errorf("%s: comm = %v, want echo", what, ev["comm"])
		}
	}
}

func TestResolveLibrary(t *testing.T) {
	p, err := resolveLibrary("libc")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p, "libc.so") {
		t.Errorf("libc resolved to %s", p)
	}
	_, err = resolveLibrary("libsluice_no_such_library")
	if err == nil || !strings.Contains(err.Error(), "libsluice_no_such_library") {
		t.Errorf("missing library: %v, want an error naming it", err)
	}
}
