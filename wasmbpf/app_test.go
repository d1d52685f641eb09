package wasmbpf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf/link"
)

// newLinks runs attach and returns the links of programs called names
// that it brought: links of the same names that existed before are not
// ours.
func newLinks(t *testing.T, attach func(), want int, names ...string) []link.ID {
	t.Helper()
	before := ourLinks(t, names...)
	attach()
	var ids []link.ID
	eventually(t, 10_000_000_000, fmt.Sprintf("%d attached programs %v", want, names), func() bool {
		ids = slices.DeleteFunc(ourLinks(t, names...), func(id link.ID) bool { return slices.Contains(before, id) })
		return len(ids) >= want
	})
	return ids
}

// TestExecsnoop runs the bootstrap-style application: its setting from
// argv (only children of this process) reaches the kernel through the
// object's .rodata, the execs and exits of a child appear decoded with
// the right fields, a grandchild's do not, the guest's callback printed
// each (its lines are in the log), and stopping the source detaches both
// programs and lets the guest return from its poll loop.
func TestExecsnoop(t *testing.T) {
	var r *running
	ids := newLinks(t, func() {
		r = startApp(t, "execsnoop", Config{Args: []string{"-p", strconv.Itoa(os.Getpid())}})
		r.log.waitFor(t, "tracing execs (target ppid "+strconv.Itoa(os.Getpid()))
	}, 2, "handle_exec", "handle_exit")

	// A child (reported) that runs a grandchild (not reported: its parent
	// is the shell, not this process).
	marker := fmt.Sprintf("/tmp/sluice-wasm-bpf-%d", os.Getpid())
	if err := exec.Command("/bin/sh", "-c", "exec /bin/true "+marker).Run(); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("/bin/sh", "-c", "/bin/echo grandchild >/dev/null; exit 3").Run(); err == nil {
		t.Fatal("the shell did not exit with status 3")
	}
	self := int64(os.Getpid())
	ev := r.c.waitFor(t, "exec of true", func(ev map[string]any) bool {
		return str(ev["comm"]) == "true" && ev["exit_event"] == false
	})
	if num(ev["ppid"]) != self || !strings.HasSuffix(str(ev["filename"]), "/true") || num(ev["pid"]) <= 0 {
		t.Errorf("exec event = %v; want ppid %d, filename .../true", ev, self)
	}
	for _, k := range []string{"time", "host", "source", "gadget", "seq"} {
		if ev[k] == nil {
			t.Errorf("exec event has no %s: %v", k, ev)
		}
	}
	if ev["gadget"] != "execsnoop" || ev["source"] != "execsnoop-src" || ev["host"] != "testhost" {
		t.Errorf("envelope = %v", ev)
	}
	exit := r.c.waitFor(t, "exit of the shell with status 3", func(ev map[string]any) bool {
		return ev["exit_event"] == true && str(ev["comm"]) == "sh" && num(ev["exit_code"]) == 3
	})
	if num(exit["ppid"]) != self {
		t.Errorf("exit event = %v; want ppid %d", exit, self)
	}
	r.log.waitFor(t, fmt.Sprintf("EXEC  true             pid=%d ppid=%d", num(ev["pid"]), self))
	r.log.waitFor(t, "EXIT  sh")
	for _, e := range r.c.snapshot() {
		if str(e["comm"]) == "echo" || num(e["ppid"]) != self {
			t.Errorf("an exec of a grandchild was reported (target_ppid did not reach the kernel): %v", e)
		}
	}

	if err := r.stop(t); err != nil {
		t.Fatalf("Run after a stop = %v; want nil", err)
	}
	linksGone(t, ids)
	// The guest returned from its loop (the poll said -EINTR), closed its
	// object and printed its last line.
	r.log.waitFor(t, "execsnoop done")
	if !r.app.guestClosed {
		t.Error("the guest's module is not closed")
	}
	if n := len(r.app.objects); n != 0 {
		t.Errorf("%d objects left after the stop", n)
	}
}

// TestExecsnoopMinDuration: the other setting (-d) changes what the
// kernel reports: no execs, only exits of processes that lived long
// enough.
func TestExecsnoopMinDuration(t *testing.T) {
	r := startApp(t, "execsnoop", Config{Args: []string{"-p", strconv.Itoa(os.Getpid()), "-d", "200"}})
	r.log.waitFor(t, "min duration 200000000 ns")
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("/bin/sleep", "0.3").Run(); err != nil {
		t.Fatal(err)
	}
	r.c.waitFor(t, "exit of sleep", func(ev map[string]any) bool {
		return ev["exit_event"] == true && str(ev["comm"]) == "sleep" && num(ev["duration_ns"]) >= 200e6
	})
	for _, e := range r.c.snapshot() {
		if e["exit_event"] == false || str(e["comm"]) == "true" {
			t.Errorf("reported despite min_duration_ns: %v", e)
		}
	}
}

// TestPerfBufferBeforeFirstPoll: records a program writes between the
// attach and the guest's first poll of its perf event array are not lost
// (a perf event array drops what comes while no reader maps it, and counts
// nothing): the guest waits 1s after attaching, and the kill(2) calls of
// that second reach it and the pipeline.
func TestPerfBufferBeforeFirstPoll(t *testing.T) {
	self := os.Getpid()
	r := startApp(t, "sigsnoop", Config{Args: []string{"-p", strconv.Itoa(self), "-w", "1000"}, EventType: "event"})
	r.log.waitFor(t, "tracing kill(2) of pid")
	for range 5 {
		if err := syscall.Kill(self, 0); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(r.log.String(), "first poll") {
		t.Skip("the guest polled before the kill(2) calls: nothing to show on this run")
	}
	eventually(t, 10_000_000_000, "5 signal events", func() bool {
		n := 0
		for _, ev := range r.c.snapshot() {
			if num(ev["pid"]) == int64(self) && num(ev["tpid"]) == int64(self) && num(ev["sig"]) == 0 {
				n++
			}
		}
		return n >= 5
	})
	r.log.waitFor(t, "(#5)")
}

// TestSigsnoopPerfBuffer runs the perf buffer application: kill(2) calls
// of this process appear decoded (sender, target, signal), and the
// guest's callback printed each.
func TestSigsnoopPerfBuffer(t *testing.T) {
	self := os.Getpid()
	r := startApp(t, "sigsnoop", Config{Args: []string{"-p", strconv.Itoa(self)}, EventType: "event"})
	r.log.waitFor(t, "tracing kill(2) of pid")
	for range 5 {
		if err := syscall.Kill(self, 0); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10_000_000_000, "5 signal events", func() bool {
		n := 0
		for _, ev := range r.c.snapshot() {
			if num(ev["pid"]) == int64(self) && num(ev["tpid"]) == int64(self) && num(ev["sig"]) == 0 {
				n++
			}
		}
		return n >= 5
	})
	r.log.waitFor(t, fmt.Sprintf("SIGNAL"))
	r.log.waitFor(t, fmt.Sprintf("pid=%d tpid=%d sig=0 (#5)", self, self))
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}

// TestMapcountHashMap runs the hash map application: the guest writes
// this process into `targets`, the kernel counts its getcwd(2) calls in
// `counts`, and the guest walks (next key), reads (lookup) and deletes
// them; its printed lines are events (emit = "stdout"). Updates with
// BPF_NOEXIST of an existing key fail with EEXIST, as in libbpf.
func TestMapcountHashMap(t *testing.T) {
	self := os.Getpid()
	r := startApp(t, "mapcount", Config{Args: []string{strconv.Itoa(self)}, Emit: EmitStdout})
	r.log.waitFor(t, "counting getcwd of 1 processes")
	r.log.waitFor(t, fmt.Sprintf("second insert of %d: -17", self))
	buf := make([]byte, 4096)
	const calls = 25
	for range calls {
		if _, err := syscall.Getcwd(buf); err != nil {
			t.Fatal(err)
		}
	}
	prefix := fmt.Sprintf("count pid=%d calls=", self)
	eventually(t, 10_000_000_000, fmt.Sprintf("%d getcwd calls counted", calls), func() bool {
		n := 0
		for _, ev := range r.c.snapshot() {
			if l, ok := strings.CutPrefix(str(ev["line"]), prefix); ok && ev["stream"] == "stdout" {
				c, _ := strconv.Atoi(l)
				n += c
			}
		}
		if n > calls {
			t.Fatalf("counted %d getcwd calls; made %d", n, calls)
		}
		return n == calls
	})
	for _, ev := range r.c.snapshot() {
		if ev["gadget"] != "mapcount" || ev["seq"] == nil || ev["time"] == nil {
			t.Errorf("line event without its envelope: %v", ev)
		}
	}
	// The guest never polls; it sleeps between walks. A stop ends it in
	// its sleep, at once.
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}

// TestKprobeRefusedClearly: a kprobe the kernel cannot attach fails with
// the gadgets' message, and the guest gets an error it can act on.
func TestKprobeRefusedClearly(t *testing.T) {
	r := startApp(t, "kprobe", Config{})
	err := r.wait(t)
	if _, statErr := os.Stat("/sys/bus/event_source/devices/kprobe/type"); statErr == nil {
		t.Skip("this kernel has kprobes; the refusal cannot be shown here")
	}
	r.log.waitFor(t, "this kernel has no kprobes")
	r.log.waitFor(t, "kprobe: attach returned -95")
	var ge *GuestError
	if !errors.As(err, &ge) || ge.Kind != KindExit || ge.Code != 4 {
		t.Errorf("Run = %v; want the guest's exit status 4", err)
	}
	if n := r.metric(MetricGuestErrors, "component", "source", "name", "kprobe-src", "kind", KindAttach); n != 1 {
		t.Errorf("attach failures counted: %v; want 1", n)
	}
	_ = context.Background
}
