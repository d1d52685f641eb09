package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// openSpec parses the built-in trace_open.
func openSpec(t *testing.T) *GadgetSpec {
	t.Helper()
	b, _ := gadgets.Lookup("trace_open")
	spec, err := ParseGadget("trace_open", b.Object, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestFilterCostsNoRingSpace proves that an event the kernel filter drops
// takes no ring buffer space: with a one-page ring nobody reads, a
// thousand filtered opens leave the ring empty and lose nothing, while
// the same opens unfiltered overflow it.
func TestFilterCostsNoRingSpace(t *testing.T) {
	testutil.RequireBPF(t)
	idle := exec.Command("/bin/sleep", "60")
	if err := idle.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { idle.Process.Kill(); idle.Wait() }()

	dir := t.TempDir()
	const opens = 1000
	run := func(t *testing.T, f Filter) (lost, discarded uint64, records int) {
		g, err := NewGadget(openSpec(t), GadgetConfig{
			Source: "open", BufferSize: os.Getpagesize(), Filter: f,
			// Only this process's opens: nothing else may fill the ring.
			Params: map[string]string{"target_pid": strconv.Itoa(os.Getpid())},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Open(); err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		for i := range opens {
			unix.Open(filepath.Join(dir, strconv.Itoa(i)), unix.O_RDONLY, 0)
		}
		g.detach()
		if lost, err = sumCounter(g.coll.Maps["events_lost_samples"]); err != nil {
			t.Fatal(err)
		}
		if discarded, err = sumCounter(g.coll.Maps["gadget_filter_discarded"]); err != nil {
			t.Fatal(err)
		}
		r := g.readers[0]
		for {
			r.SetDeadline(time.Now().Add(-time.Second))
			if _, _, err := r.Read(); err != nil {
				break
			}
			records++
		}
		return lost, discarded, records
	}

	// The filter admits only the idle process, which opens nothing.
	lost, discarded, records := run(t, Filter{PID: uint32(idle.Process.Pid)})
	if lost != 0 || records != 0 || discarded < opens {
		t.Errorf("filtered: lost %d, records in the ring %d, discarded %d; want 0, 0 and at least %d", lost, records, discarded, opens)
	}
	lost, discarded, records = run(t, Filter{})
	if lost == 0 || records == 0 || records+int(lost) < opens || discarded != 0 {
		t.Errorf("unfiltered: lost %d, records %d, discarded %d; want the one-page ring to overflow (lost + records >= %d) and nothing discarded", lost, records, discarded, opens)
	}
}

// TestFilterSelects runs trace_open under each filter and checks the
// events that pass: the filter's own process passes, this test process
// does not.
func TestFilterSelects(t *testing.T) {
	nobody := uint32(65534)
	root := uint32(0)
	for _, tc := range []struct {
		name   string
		filter func(child int) Filter
		cred   *syscall.Credential
	}{
		{"pid", func(child int) Filter { return Filter{PID: uint32(child)} }, nil},
		{"comm", func(int) Filter { return Filter{Comm: "sluice-cat"} }, nil},
		{"uid", func(int) Filter { return Filter{UID: &nobody} }, &syscall.Credential{Uid: nobody, Gid: nobody}},
		{"gid", func(int) Filter { return Filter{GID: &nobody} }, &syscall.Credential{Uid: root, Gid: nobody}},
		{"exclude_pid", func(int) Filter { return Filter{ExcludePID: uint32(os.Getpid())} }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.RequireBPF(t)
			child, feed := catLoop(t, tc.cred, nil)
			_, c := startGadgetWith(t, "trace_open", nil, ParseOptions{}, GadgetConfig{Filter: tc.filter(child.Process.Pid)}, &collector{})
			mine := filepath.Join(t.TempDir(), "mine")
			os.WriteFile(mine, nil, 0o644)
			// This process's open comes first; the child's comes after it
			// and is waited for, so the first one has been decided on.
			f, _ := os.Open(mine)
			f.Close()
			feed("/etc/hostname")
			c.waitFor(t, "the child's open", func(ev map[string]any) bool {
				return ev["path"] == "/etc/hostname" && num(ev["pid"]) == int64(child.Process.Pid)
			})
			for _, ev := range c.snapshot() {
				if num(ev["pid"]) == int64(os.Getpid()) {
					t.Fatalf("an open of the test process passed the %s filter: %v", tc.name, ev)
				}
			}
		})
	}
}

// TestFilterCgroup: only tasks in the cgroups of the set pass.
func TestFilterCgroup(t *testing.T) {
	testutil.RequireBPF(t)
	root := cgroup2Mount(t)
	dir := filepath.Join(root, fmt.Sprintf("sluice-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) }) // after the child is gone (cleanups run last first)
	child, feed := catLoop(t, nil, nil)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(child.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	_, c := startGadgetWith(t, "trace_open", nil, ParseOptions{}, GadgetConfig{Filter: Filter{ByCgroup: true, CgroupIDs: []uint64{st.Ino}}}, &collector{})
	f, _ := os.Open("/etc/hostname")
	f.Close()
	feed("/etc/passwd")
	c.waitFor(t, "the open of the child in the cgroup", func(ev map[string]any) bool {
		return ev["path"] == "/etc/passwd" && num(ev["pid"]) == int64(child.Process.Pid)
	})
	for _, ev := range c.snapshot() {
		if num(ev["pid"]) == int64(os.Getpid()) {
			t.Fatalf("an open of the test process, outside the cgroup, passed: %v", ev)
		}
	}
}

// cgroup2Mount returns where the cgroup v2 hierarchy is mounted
// (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid systems).
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if ok && strings.HasPrefix(post, "cgroup2 ") {
			if f := strings.Fields(pre); len(f) > 4 {
				return f[4]
			}
		}
	}
	t.Fatal("no cgroup2 file system mounted")
	return ""
}

// TestFilterMntNS: only the namespaces in the set pass, and the set changes
// while the gadget runs.
func TestFilterMntNS(t *testing.T) {
	testutil.RequireBPF(t)
	inNS, feed := catLoop(t, nil, &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS})
	childNS := mntNS(t, inNS.Process.Pid)
	ownNS := mntNS(t, os.Getpid())
	if childNS == ownNS {
		t.Fatal("CLONE_NEWNS left the child in the test's mount namespace")
	}
	g, c := startGadgetWith(t, "trace_open", nil, ParseOptions{}, GadgetConfig{Filter: Filter{ByMntNS: true, MntNS: []uint64{ownNS}}}, &collector{})
	dir := t.TempDir()
	marker := func(n int) string {
		p := filepath.Join(dir, strconv.Itoa(n))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	}

	feed("/etc/hostname")
	m := marker(1)
	c.waitFor(t, "the test's open", func(ev map[string]any) bool { return ev["path"] == m })
	for _, ev := range c.snapshot() {
		if num(ev["mntns_id"]) == int64(childNS) {
			t.Fatalf("an event of a namespace outside the set passed: %v", ev)
		}
	}

	if !g.SelectsMntNS(ownNS) || g.SelectsMntNS(childNS) {
		t.Errorf("SelectsMntNS(own, child) = %v, %v; want the set the kernel holds: true, false", g.SelectsMntNS(ownNS), g.SelectsMntNS(childNS))
	}
	if err := g.SetMntNS([]uint64{childNS}); err != nil {
		t.Fatal(err)
	}
	if g.SelectsMntNS(ownNS) || !g.SelectsMntNS(childNS) {
		t.Errorf("after SetMntNS: SelectsMntNS(own, child) = %v, %v; want false, true", g.SelectsMntNS(ownNS), g.SelectsMntNS(childNS))
	}
	marker(2)
	feed("/etc/passwd")
	c.waitFor(t, "the child's open once its namespace is in the set", func(ev map[string]any) bool {
		return ev["path"] == "/etc/passwd" && num(ev["mntns_id"]) == int64(childNS)
	})
	for _, ev := range c.snapshot() {
		if ev["path"] == filepath.Join(dir, "2") {
			t.Errorf("the test's namespace left the set but its open passed: %v", ev)
		}
	}
}

// TestFilterReportsDiscarded: what the kernel filter discarded reaches the
// pipeline's counters (read once more when the gadget stops).
func TestFilterReportsDiscarded(t *testing.T) {
	testutil.RequireBPF(t)
	g, err := NewGadget(openSpec(t), GadgetConfig{Source: "open", Filter: Filter{PID: 1, TID: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Open(); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, c) }()
	const opens = 100
	for range opens {
		f, _ := os.Open("/etc/hostname")
		f.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.filtered < opens || c.filtered != g.KernelFiltered() {
		t.Errorf("reported filtered %d, KernelFiltered %d; want equal and at least %d", c.filtered, g.KernelFiltered(), opens)
	}
}

// TestFilterUnsupported: a gadget without the filter contract says which
// filters it lacks, and a filter contradicting a parameter is refused.
func TestFilterUnsupported(t *testing.T) {
	obj, err := gadgets.TestObject("plain_libbpf")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ParseGadget("plain", obj, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.FilterSupport(); len(got) != 0 {
		t.Errorf("plain_libbpf FilterSupport = %v, want none", got)
	}
	_, err = NewGadget(spec, GadgetConfig{Filter: Filter{PID: 1, Comm: "x"}})
	var fe *FilterError
	if !errors.As(err, &fe) || !cmp.Equal(fe.Unsupported, []string{"pid", "comm"}) {
		t.Errorf("NewGadget(plain, pid+comm filter) = %v, want a FilterError naming pid and comm", err)
	}

	open := openSpec(t)
	want := []string{"pid", "tid", "uid", "gid", "comm", "mntns", "cgroup", "exclude_pid"}
	if diff := cmp.Diff(want, open.FilterSupport()); diff != "" {
		t.Errorf("trace_open FilterSupport (-want +got):\n%s", diff)
	}
	_, err = NewGadget(open, GadgetConfig{Filter: Filter{PID: 7}, Params: map[string]string{"targ_pid": "8"}})
	if !errors.As(err, &fe) || fe.Err == nil {
		t.Errorf("a filter contradicting a parameter: %v, want a FilterError", err)
	}
	if _, err := NewGadget(open, GadgetConfig{Filter: Filter{Comm: "a-name-of-16-byt"}}); !errors.As(err, &fe) {
		t.Errorf("a 16-byte comm: %v, want a FilterError", err)
	}
}

// catLoop starts a shell, named sluice-cat, that opens every path written
// to it (itself, with a redirection: no child process), with the given
// credentials or process attributes.
func catLoop(t *testing.T, cred *syscall.Credential, attr *syscall.SysProcAttr) (*exec.Cmd, func(path string)) {
	t.Helper()
	dir := t.TempDir()
	// Reachable by the unprivileged users some tests run it as.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "sluice-cat")
	if err := os.Symlink("/bin/sh", link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "-c", `while read p; do : <"$p"; echo done; done`)
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	attr.Credential = cred
	cmd.SysProcAttr = attr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	buf := make([]byte, 5)
	return cmd, func(path string) {
		t.Helper()
		fmt.Fprintln(in, path)
		if _, err := io.ReadFull(out, buf); err != nil {
			t.Fatalf("the cat loop did not answer: %v", err)
		}
	}
}

func mntNS(t *testing.T, pid int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/mnt", pid), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestSetMntNSBeforeOpen: a set given before Open is the one the gadget
// loads with; a gadget without a namespace filter refuses sets.
func TestSetMntNSBeforeOpen(t *testing.T) {
	testutil.RequireBPF(t)
	g, err := NewGadget(openSpec(t), GadgetConfig{Source: "open", Host: "testhost", Filter: Filter{ByMntNS: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SetMntNS([]uint64{mntNS(t, os.Getpid())}); err != nil {
		t.Fatal(err)
	}
	if !g.SelectsMntNS(mntNS(t, os.Getpid())) || g.SelectsMntNS(1) {
		t.Error("SelectsMntNS before Open does not answer from the set given")
	}
	if err := g.Open(); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, c) }()
	defer func() { cancel(); <-done }()
	path := filepath.Join(t.TempDir(), "seen")
	os.WriteFile(path, nil, 0o644)
	c.waitFor(t, "an open in the namespace set before Open", func(ev map[string]any) bool { return ev["path"] == path })

	plain, err := NewGadget(openSpec(t), GadgetConfig{Source: "open"})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.SetMntNS([]uint64{1}); !errors.Is(err, ErrNoMntNSFilter) {
		t.Errorf("SetMntNS on a gadget without the filter = %v, want ErrNoMntNSFilter", err)
	}
	if !plain.SelectsMntNS(1) {
		t.Error("a gadget without a namespace filter does not select every namespace")
	}
}
