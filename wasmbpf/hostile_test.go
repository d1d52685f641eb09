package wasmbpf

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCallbackTrapContained: a guest whose callback traps ends with a
// KindCallback error, counted; the record that reached the callback was
// emitted first, and the programs are detached.
func TestCallbackTrapContained(t *testing.T) {
	var r *running
	ids := newLinks(t, func() {
		r = startApp(t, "trap_callback", Config{Args: []string{"-p", strconv.Itoa(os.Getpid())}})
		r.log.waitFor(t, "trap_callback: polling")
	}, 1, "handle_exec")
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	err := r.wait(t)
	var ge *GuestError
	if !errors.As(err, &ge) || ge.Kind != KindCallback {
		t.Fatalf("Run = %v; want a callback error", err)
	}
	r.c.waitFor(t, "the exec the callback trapped on", func(ev map[string]any) bool { return str(ev["comm"]) == "true" })
	if n := r.metric(MetricGuestErrors, "component", "source", "name", "trap_callback-src", "kind", KindCallback); n != 1 {
		t.Errorf("callback failures counted: %v; want 1", n)
	}
	linksGone(t, ids)
	if !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("error %q does not say the guest trapped", err)
	}
}

// TestGuestThatNeverPolls: a guest that attaches a tracer and spins is
// reported stalled (once), its records wait in the kernel, and a stop
// interrupts it within the grace period, detaches it and emits what its
// buffer held: nothing is lost.
func TestGuestThatNeverPolls(t *testing.T) {
	var r *running
	ids := newLinks(t, func() {
		r = startApp(t, "no_poll", Config{Args: []string{"-p", strconv.Itoa(os.Getpid())}, StallAfter: 300 * time.Millisecond, StopGrace: 500 * time.Millisecond})
		r.log.waitFor(t, "no_poll: attached, never polling")
	}, 1, "handle_exec")
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	r.log.waitFor(t, "has not polled their output")
	if n := r.metric(MetricGuestErrors, "component", "source", "name", "no_poll-src", "kind", KindStall); n != 1 {
		t.Errorf("stalls counted: %v; want 1", n)
	}
	if len(r.c.snapshot()) != 0 {
		t.Fatal("events before anyone polled")
	}
	start := time.Now()
	if err := r.stop(t); err != nil {
		t.Fatalf("Run after a stop = %v; want nil", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the stop took %s", took)
	}
	linksGone(t, ids)
	r.c.waitFor(t, "the exec left in the buffer, drained at the stop", func(ev map[string]any) bool { return str(ev["comm"]) == "true" })
	if !r.app.guestClosed {
		t.Error("the guest's module is not closed")
	}
}

// TestVerifierRejectionContained: an object the verifier rejects fails
// the load with the verifier's log in the agent's log; the guest gets 0
// and ends; the failure is counted.
func TestVerifierRejectionContained(t *testing.T) {
	r := startApp(t, "verifier", Config{})
	err := r.wait(t)
	var ge *GuestError
	if !errors.As(err, &ge) || ge.Kind != KindExit || ge.Code != 1 {
		t.Fatalf("Run = %v; want the guest's exit status 1", err)
	}
	r.log.waitFor(t, "verifier: load refused")
	log := r.log.String()
	for _, want := range []string{"the verifier rejected the program", "verifier log (last lines)", "out_of_bounds"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
	if n := r.metric(MetricGuestErrors, "component", "source", "name", "verifier-src", "kind", KindLoad); n != 1 {
		t.Errorf("load failures counted: %v; want 1", n)
	}
}

// TestBadPointersRefused: a guest passing out-of-range pointers (past the
// end, wrapping around, unterminated strings), bad handles, descriptors
// and callbacks to every host function gets an error from each, and each
// refusal is counted.
func TestBadPointersRefused(t *testing.T) {
	r := startApp(t, "bad_pointers", Config{})
	if err := r.wait(t); err != nil {
		t.Fatalf("Run = %v; want the guest to exit 0 (every call refused)\n%s", err, r.log.String())
	}
	r.log.waitFor(t, "calls refused")
	if strings.Contains(r.log.String(), "was accepted") {
		t.Errorf("a bad call was accepted:\n%s", r.log.String())
	}
	var refused float64
	for k, v := range r.reg.Snapshot() {
		if strings.HasPrefix(k, MetricRefusedCalls+"{") {
			refused += v
		}
	}
	if refused < 20 {
		t.Errorf("refused calls counted: %v; want at least 20", refused)
	}
	for _, fn := range []string{"wasm_load_bpf_object", "wasm_attach_bpf_program", "wasm_attach_bpf_program_fd", "wasm_bpf_map_fd_by_name", "wasm_bpf_map_operate", "wasm_bpf_buffer_poll", "wasm_close_bpf_object"} {
		if !strings.Contains(fmt.Sprint(r.reg.Snapshot()), `function="`+fn+`"`) {
			t.Errorf("no refusal of %s counted", fn)
		}
	}
}

// TestGoWrapperPollInterrupted: TinyGo's poll (callback-wrapper, callback
// go-callback) delivers records; a guest that ignores the poll's -EINTR
// and polls again is interrupted there, without waiting for the grace.
func TestGoWrapperPollInterrupted(t *testing.T) {
	r := startApp(t, "gowrapper", Config{Args: []string{"-p", strconv.Itoa(os.Getpid())}, StopGrace: time.Minute})
	r.log.waitFor(t, "gowrapper: polling")
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	r.c.waitFor(t, "exec of true", func(ev map[string]any) bool { return str(ev["comm"]) == "true" })
	r.log.waitFor(t, "go-callback: true")
	r.log.waitFor(t, "ctx=42")
	start := time.Now()
	if err := r.stop(t); err != nil {
		t.Fatalf("Run after a stop = %v; want nil", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the stop took %s; the second poll should have ended the guest", took)
	}
}

// TestGuestMemoryFreed: the memory a guest took is released once its
// source stopped and the application is closed.
func TestGuestMemoryFreed(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap()
	r := startApp(t, "memhog", Config{Args: []string{"160"}})
	r.log.waitFor(t, "memhog: holding 160 MiB")
	if held := heap(); held < base+150<<20 {
		t.Fatalf("the guest's 160 MiB do not show in the heap (%d -> %d bytes); the test cannot tell if they are freed", base, held)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if err := r.app.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.app = nil
	eventually(t, 10*time.Second, "the guest's memory released", func() bool {
		return heap() < base+64<<20
	})
}

// TestSandbox: a guest reaches no file, environment or directory it was
// not granted, and what was granted it reaches.
func TestSandbox(t *testing.T) {
	r := startApp(t, "sandbox", Config{Args: []string{"x", "y"}})
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sandbox: /etc/passwd refused", "sandbox: /granted/hello.txt refused", "HOME=(unset) TZ=(unset)", "argv[0]=sandbox argc=3"} {
		r.log.waitFor(t, want)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hi there\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = startApp(t, "sandbox", Config{Grants: Grants{Env: map[string]string{"TZ": "UTC"}, Dirs: []Dir{{Host: dir, Guest: "/granted"}}}})
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sandbox: /etc/passwd refused", "sandbox: /granted/hello.txt says hi there", "HOME=(unset) TZ=UTC"} {
		r.log.waitFor(t, want)
	}

	// A grant is a jail, as for Wasm stages: a link planted in it that
	// points outside is not followed.
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("outside secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	jailed := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(jailed, "hello.txt")); err != nil {
		t.Fatal(err)
	}
	r = startApp(t, "sandbox", Config{Grants: Grants{Dirs: []Dir{{Host: jailed, Guest: "/granted"}}}})
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	r.log.waitFor(t, "sandbox: /granted/hello.txt refused")
	if strings.Contains(r.log.String(), "outside secret") {
		t.Errorf("the guest read a file outside its grant through a planted link; log:\n%s", r.log.String())
	}
}
