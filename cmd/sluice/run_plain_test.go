package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
)

func plainObject(t *testing.T, dir, name string) string {
	t.Helper()
	obj, err := gadgets.TestObject("libbpf/" + name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".bpf.o")
	if err := os.WriteFile(path, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunPlainHelp: a plain object's help lists its const volatile globals
// with their C types and defaults, its programs, and how the event type
// was found; the flags the run would be given count.
func TestRunPlainHelp(t *testing.T) {
	dir := t.TempDir()
	sig := plainObject(t, dir, "sigsnoop")
	out, stderr, code := runInProcess(t, "run", sig, "--skip-programs", "sig_trace", "--help")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"failed_only=bool, default false",
		"filtered_pid=int (pid_t), default 0",
		"target_signal=int, default 0",
		"Programs (--programs, --skip-programs):\n  kill_entry (tracepoint/syscalls/sys_enter_kill)",
		"(event type: struct event (32 bytes) by record size, from the object's BTF)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "sig_trace") {
		t.Errorf("help lists the skipped program sig_trace:\n%s", out)
	}

	exe := plainObject(t, dir, "execsnoop")
	if _, stderr, code := runInProcess(t, "run", exe, "--help"); code != 1 || !strings.Contains(stderr, "no constant record size") {
		t.Errorf("help of execsnoop without --event-type: exit %d, stderr %q", code, stderr)
	}
	out, stderr, code = runInProcess(t, "run", exe, "--event-type", "event", "--hint", "args:as=strings,count=args_count", "--help")
	// targ_uid is the uid filter of Inspektor Gadget's (and libbpf-tools')
	// naming: --uid sets it, so help lists it with the kernel filters.
	if code != 0 || !strings.Contains(out, "Filters in the kernel (a filtered event costs no ring buffer space): uid") || !strings.Contains(out, "by hint, from the object's BTF") {
		t.Errorf("help of execsnoop with --event-type: exit %d\n%s%s", code, out, stderr)
	}
}

func TestParseHintFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want config.FieldHint
		err  string
	}{
		{in: "args:as=strings,count=args_count", want: config.FieldHint{Name: "args", As: "strings", Count: "args_count"}},
		{in: "saddr_v6: as=ip, family=af, rename=saddr", want: config.FieldHint{Name: "saddr_v6", As: "ip", Family: "af", Rename: "saddr"}},
		{in: "u:tag=kind,case.EVENT_EXEC=exec,case.2=exit", want: config.FieldHint{Name: "u", Tag: "kind", Cases: map[string]string{"EVENT_EXEC": "exec", "2": "exit"}}},
		{in: "args", err: "want MEMBER:KEY=VALUE"},
		{in: "args:as", err: `"as": want KEY=VALUE`},
		{in: "args:as=list", err: `as = "list"`},
		{in: "args:colour=red", err: `unknown key "colour"`},
		{in: "u:tag=kind", err: "needs both tag"},
	} {
		got, err := parseHint(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseHint(%q) = %v, want an error saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseHint(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseHint(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	if _, stderr, code := runInProcess(t, "run", "trace_exec", "--hint", "args"); code != 2 || !strings.Contains(stderr, "--hint") {
		t.Errorf("a bad --hint: exit %d, stderr %q; want a usage error (2) naming the flag", code, stderr)
	}
}

// TestRunPlainObject runs execsnoop with an event type, a strings hint and
// an undeclared parameter from the command line, and checks the args of
// an exec it triggers; --log-level info says how the type was found.
func TestRunPlainObject(t *testing.T) {
	testutil.RequireBPF(t)
	dir := t.TempDir()
	exe := plainObject(t, dir, "execsnoop")
	cmd := exec.Command(sluiceBin, "run", exe, "-o", "json", "--event-type", "event",
		"--hint", "args:as=strings,count=args_count", "--param", "ignore_failed=false", "--log-level", "info", "--timeout", "20s")
	stdout := &testutil.SyncBuffer{}
	stderr := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	marker := "sluice-plain-" + filepath.Base(dir)
	deadline := time.Now().Add(15 * time.Second)
	for {
		// Exec until the gadget reports it: the first may run before the
		// gadget is attached.
		exec.Command("/bin/echo", marker, "two words").Run()
		if ev := jsonLine(stdout.String(), func(ev map[string]any) bool {
			args, _ := ev["args"].([]any)
			return len(args) == 3 && args[1] == marker
		}); ev != nil {
			if diff := cmp.Diff([]any{"/bin/echo", marker, "two words"}, ev["args"]); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no exec event within 15s:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), `struct=event size=7720 found_by=hint from="the object's BTF"`) {
		t.Errorf("stderr does not say how the event type was found:\n%s", stderr.String())
	}
}

func jsonLine(out string, match func(map[string]any) bool) map[string]any {
	for _, line := range strings.Split(out, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && match(ev) {
			return ev
		}
	}
	return nil
}

// TestConfigValidatePlainReport: config validate says how each event type
// was found.
func TestConfigValidatePlainReport(t *testing.T) {
	dir := t.TempDir()
	plainObject(t, dir, "tcpstates")
	path := filepath.Join(dir, "sluice.hcl")
	os.WriteFile(path, []byte(`source "gadget" "tcp" { gadget = "./tcpstates.bpf.o" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.tcp]
  sinks   = [sink.stdout.out]
}
`), 0o644)
	out, stderr, code := runInProcess(t, "config", "validate", path)
	if code != 0 || !strings.Contains(out, "source.gadget.tcp: output events (map events): struct event (96 bytes) by record size, from the object's DWARF") {
		t.Errorf("validate: exit %d\n%s%s", code, out, stderr)
	}
}
