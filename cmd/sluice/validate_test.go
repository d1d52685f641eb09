package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// A gadget only the verifier refuses passes `config validate` (nothing is
// loaded), and fails with --privileged, which loads it: the diagnostic
// points at the gadget and carries the verifier log's tail.
func TestConfigValidatePrivilegedLoadsGadgets(t *testing.T) {
	testutil.RequireBPF(t)
	dir := t.TempDir()
	elf, err := gadgets.TestObject("verifier_reject")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "reject.bpf.o"), elf, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sluice.hcl")
	os.WriteFile(path, []byte(`agent { data_dir = "`+dir+`" }
source "gadget" "reject" {
  gadget = "reject.bpf.o"
  event_type = "event"
}
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.reject]
  sinks   = [sink.stdout.out]
}
`), 0o644)
	if out, errOut, code := runInProcess(t, "config", "validate", path); code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("without --privileged: exit %d, %s%s", code, out, errOut)
	}
	_, errOut, code := runInProcess(t, "config", "validate", "--privileged", path)
	for _, want := range []string{"sluice.hcl:3:12: Error: Kernel refused the gadget", "the verifier rejected the program", "verifier log (last lines)"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("with --privileged: stderr lacks %q", want)
		}
	}
	if code != 1 {
		t.Errorf("with --privileged: exit %d, want 1; stderr:\n%s", code, errOut)
	}
}

// As a user without privileges, validation passes what it can check and
// says which checks it could not make (tracepoints: tracefs is root's);
// --privileged says what is missing and checks nothing.
func TestConfigValidateWithoutPrivileges(t *testing.T) {
	testutil.RequireBPF(t) // root is needed to switch to another user
	dir, err := os.MkdirTemp("", "sluice-validate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "sluice.hcl")
	os.WriteFile(path, []byte(`agent { data_dir = "`+dir+`/data" }
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`), 0o644)
	asNobody := func(args ...string) (string, string, int) {
		cmd := exec.Command(sluiceBin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}
	out, errOut, code := asNobody("config", "validate", path)
	if code != 0 || !strings.Contains(out, "valid") {
		t.Errorf("as nobody: exit %d, want 0; %s%s", code, out, errOut)
	}
	for _, want := range []string{"Warning: Not checked without privileges", "tracepoint syscalls/sys_enter_execve not checked", "readable by root only"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("as nobody: stderr lacks %q:\n%s", want, errOut)
		}
	}
	_, errOut, code = asNobody("config", "validate", "--privileged", path)
	if code != 1 || !strings.Contains(errOut, "CAP_BPF") || strings.Contains(errOut, "valid (") {
		t.Errorf("--privileged as nobody: exit %d, want 1 naming CAP_BPF; stderr:\n%s", code, errOut)
	}
}
