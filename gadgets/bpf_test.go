package gadgets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

const execFromThreadEnv = "SLUICE_GADGETS_TEST_EXEC_FROM_THREAD"

func TestMain(m *testing.M) {
	if os.Getenv(execFromThreadEnv) == "1" {
		execFromNonLeaderThread()
	}
	os.Exit(m.Run())
}

// execFromNonLeaderThread runs in a child process of TestTraceExec: it
// execs /bin/true from a thread other than the thread-group leader.
func execFromNonLeaderThread() {
	for {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			if unix.Gettid() == unix.Getpid() {
				// The leader: keep it occupied (never unlocked) and
				// let the next goroutine take another thread.
				close(done)
				select {}
			}
			err := syscall.Exec("/bin/true", []string{"/bin/true", "from-thread"}, nil)
			fmt.Fprintln(os.Stderr, "exec from thread:", err)
			os.Exit(3)
		}()
		<-done
	}
}

// requireBPF skips a test that needs root and a BPF-capable kernel, or fails
// it when SLUICE_REQUIRE_BPF=1 says the environment must provide both. It
// also mounts tracefs, which tracepoint attachment needs, when missing.
func requireBPF(t *testing.T) {
	t.Helper()
	skip := func(reason string) {
		t.Helper()
		if os.Getenv("SLUICE_REQUIRE_BPF") == "1" {
			t.Fatalf("SLUICE_REQUIRE_BPF=1 but %s", reason)
		}
		t.Skip(reason)
	}
	if os.Geteuid() != 0 {
		skip("loading eBPF programs needs root")
	}
	if _, err := os.Stat("/sys/kernel/tracing/events"); err != nil {
		if err := unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
			skip(fmt.Sprintf("tracefs is not mounted and mounting it failed: %v", err))
		}
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		skip(fmt.Sprintf("remove memlock limit: %v", err))
	}
}

// gadget is a loaded, attached built-in under test.
type gadget struct {
	coll   *ebpf.Collection
	rd     *ringbuf.Reader
	fields map[string]btf.Member
	size   int
}

// attach attaches every program of coll by its tracepoint section name. A
// program named by a GADGET_OPTIONAL marker may fail to attach (logged);
// any other failure is an error.
func attach(t *testing.T, spec *ebpf.CollectionSpec, coll *ebpf.Collection) error {
	t.Helper()
	optional := map[string]bool{}
	for _, p := range optionalPrograms(spec) {
		optional[p] = true
	}
	for name, ps := range spec.Programs {
		group, tp, ok := strings.Cut(strings.TrimPrefix(ps.SectionName, "tracepoint/"), "/")
		if !ok {
			return fmt.Errorf("attach %s: section %q is not tracepoint/<group>/<name>", name, ps.SectionName)
		}
		l, err := link.Tracepoint(group, tp, coll.Programs[name], nil)
		if err != nil {
			if optional[name] {
				t.Logf("optional program %s not attached: %v", name, err)
				continue
			}
			return fmt.Errorf("attach %s to %s/%s: %w", name, group, tp, err)
		}
		t.Cleanup(func() { l.Close() })
	}
	return nil
}

// loadGadget loads a built-in with params set, attaches it and opens a
// reader on its events ring. edit, if not nil, may change the spec first.
func loadGadget(t *testing.T, name string, params map[string]any, edit func(*ebpf.CollectionSpec)) *gadget {
	t.Helper()
	requireBPF(t)
	b, ok := Lookup(name)
	if !ok {
		t.Fatalf("no builtin %s", name)
	}
	spec := loadSpec(t, b.Object)
	for k, v := range params {
		if err := spec.Variables[k].Set(v); err != nil {
			t.Fatalf("set param %s: %v", k, err)
		}
	}
	if edit != nil {
		edit(spec)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("load %s: %+v", name, ve)
		}
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(func() { coll.Close() })
	if err := attach(t, spec, coll); err != nil {
		t.Fatal(err)
	}
	rd, err := ringbuf.NewReader(coll.Maps["events"])
	if err != nil {
		t.Fatalf("open ring buffer: %v", err)
	}
	t.Cleanup(func() { rd.Close() })
	st := eventStruct(t, spec)
	g := &gadget{coll: coll, rd: rd, fields: map[string]btf.Member{}, size: int(st.Size)}
	for _, m := range st.Members {
		g.fields[m.Name] = m
	}
	return g
}

// record is one raw sample, read through the BTF member offsets.
type record struct {
	g   *gadget
	raw []byte
}

func (r record) off(name string) int {
	m, ok := r.g.fields[name]
	if !ok {
		panic("no field " + name)
	}
	return int(m.Offset.Bytes())
}

func (r record) u16(name string) uint16 {
	return binary.LittleEndian.Uint16(r.raw[r.off(name):])
}

func (r record) u32(name string) uint32 {
	return binary.LittleEndian.Uint32(r.raw[r.off(name):])
}

func (r record) i32(name string) int32 { return int32(r.u32(name)) }

func (r record) u64(name string) uint64 {
	return binary.LittleEndian.Uint64(r.raw[r.off(name):])
}

func (r record) i64(name string) int64 { return int64(r.u64(name)) }

func (r record) str(name string, n int) string {
	b := r.raw[r.off(name) : r.off(name)+n]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// next polls the ring (records are submitted without wakeups) until match
// accepts a record, for at most five seconds.
func (g *gadget) next(t *testing.T, what string, match func(record) bool) record {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for time.Now().Before(end) {
		g.rd.SetDeadline(time.Now().Add(5 * time.Millisecond))
		rec, err := g.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			t.Fatalf("read ring buffer: %v", err)
		}
		r := record{g: g, raw: rec.RawSample}
		if len(r.raw) < r.off("comm")+16 {
			t.Fatalf("record of %d bytes is too short", len(r.raw))
		}
		if match(r) {
			return r
		}
	}
	t.Fatalf("no %s record within 5s", what)
	return record{}
}

// checkCommon checks the fields every built-in fills for the current task.
func checkCommon(t *testing.T, r record, pid int) {
	t.Helper()
	if got := r.u32("pid"); got != uint32(pid) {
		t.Errorf("pid = %d, want %d", got, pid)
	}
	if got := r.u32("uid"); got != uint32(os.Getuid()) {
		t.Errorf("uid = %d, want %d", got, os.Getuid())
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		t.Fatal(err)
	}
	now := uint64(ts.Nano())
	if got := r.u64("timestamp"); got == 0 || got > now || now-got > uint64(time.Minute) {
		t.Errorf("timestamp = %d, boot time now %d", got, now)
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/mnt", os.Getpid()), &st); err != nil {
		t.Fatal(err)
	}
	if got := r.u64("mntns_id"); got != st.Ino {
		t.Errorf("mntns_id = %d, want %d", got, st.Ino)
	}
}

func TestTraceExec(t *testing.T) {
	g := loadGadget(t, "trace_exec", nil, nil)

	argsAt := record{g: g}.off("args")
	argsOf := func(r record) []byte { return r.raw[argsAt:] }

	cmd := exec.Command("/bin/true", "alpha", "", "gamma")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	r := g.next(t, "exec of /bin/true", func(r record) bool {
		return r.u32("pid") == uint32(cmd.Process.Pid)
	})
	if got := r.str("filename", 256); got != "/bin/true" {
		t.Errorf("filename = %q", got)
	}
	// The record must end exactly where the args end: empty args survive
	// and nothing past them is sent.
	if got, want := argsOf(r), []byte("/bin/true\x00alpha\x00\x00gamma\x00"); !bytes.Equal(got, want) {
		t.Errorf("args = %q, want %q", got, want)
	}
	if got := r.str("comm", 16); got != "true" {
		t.Errorf("comm = %q, want true", got)
	}
	if got := r.u32("ppid"); got != uint32(os.Getpid()) {
		t.Errorf("ppid = %d, want %d", got, os.Getpid())
	}
	if got := r.i64("ret"); got != 0 {
		t.Errorf("ret = %d, want 0", got)
	}
	if got := r.u32("gid"); got != uint32(os.Getgid()) {
		t.Errorf("gid = %d, want %d", got, os.Getgid())
	}
	checkCommon(t, r, cmd.Process.Pid)

	const missing = "/nonexistent/sluice-gadget-test"
	if err := exec.Command(missing, "x").Run(); err == nil {
		t.Fatal("exec of a missing file succeeded")
	}
	r = g.next(t, "failed exec", func(r record) bool { return r.str("filename", 256) == missing })
	if got := r.i64("ret"); got != -int64(unix.ENOENT) {
		t.Errorf("failed exec: ret = %d, want -ENOENT", got)
	}
	if got, want := argsOf(r), []byte(missing+"\x00x\x00"); !bytes.Equal(got, want) {
		t.Errorf("failed exec: args = %q, want %q", got, want)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(self)
	cmd.Env = append(os.Environ(), execFromThreadEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("exec from a non-leader thread: %v\n%s", err, out)
	}
	r = g.next(t, "exec from a non-leader thread", func(r record) bool {
		return r.u32("pid") == uint32(cmd.Process.Pid) && r.str("filename", 256) == "/bin/true"
	})
	if got, want := argsOf(r), []byte("/bin/true\x00from-thread\x00"); !bytes.Equal(got, want) || r.i64("ret") != 0 {
		t.Errorf("exec from thread: args = %q ret = %d, want %q and 0", got, r.i64("ret"), want)
	}
}

func TestTraceExecIgnoreFailed(t *testing.T) {
	g := loadGadget(t, "trace_exec", map[string]any{"ignore_failed": true}, nil)
	const missing = "/nonexistent/sluice-gadget-test-ignored"
	if err := exec.Command(missing).Run(); err == nil {
		t.Fatal("exec of a missing file succeeded")
	}
	cmd := exec.Command("/bin/true", "after")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	// Records arrive in submission order: the failed exec, had it been
	// emitted, would come before the successful one.
	g.next(t, "exec after a failed one", func(r record) bool {
		if r.str("filename", 256) == missing {
			t.Errorf("failed exec reported despite ignore_failed")
		}
		return r.u32("pid") == uint32(cmd.Process.Pid)
	})
}

func TestTraceOpen(t *testing.T) {
	g := loadGadget(t, "trace_open", map[string]any{"target_pid": uint32(os.Getpid())}, nil)
	dir := t.TempDir()

	path := filepath.Join(dir, "created")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	r := g.next(t, "openat", func(r record) bool { return r.str("path", 256) == path })
	checkCommon(t, r, os.Getpid())
	if got, want := r.u32("flags")&(unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY), uint32(unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY); got != want {
		t.Errorf("flags = %#o, want %#o set", r.u32("flags"), want)
	}
	if got := r.u32("mode"); got != 0o640 {
		t.Errorf("mode = %#o, want 0640", got)
	}
	if got := r.i64("ret"); got < 0 {
		t.Errorf("ret = %d, want an fd", got)
	}

	missing := filepath.Join(dir, "missing")
	if _, err := os.Open(missing); err == nil {
		t.Fatal("open of a missing file succeeded")
	}
	r = g.next(t, "failed openat", func(r record) bool { return r.str("path", 256) == missing })
	if got := r.i64("ret"); got != -int64(unix.ENOENT) {
		t.Errorf("failed open: ret = %d, want -ENOENT", got)
	}

	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	r = g.next(t, "openat2", func(r record) bool {
		return r.str("path", 256) == path && r.u32("flags")&unix.O_CLOEXEC != 0
	})
	if got := r.i64("ret"); got != int64(fd) {
		t.Errorf("openat2: ret = %d, want %d", got, fd)
	}

	// open(2) is an optional program; on x86_64 it exists and must work.
	legacy := filepath.Join(dir, "legacy")
	fd2, _, errno := unix.Syscall(unix.SYS_OPEN, uintptr(unsafe.Pointer(cString(legacy))), unix.O_CREAT|unix.O_RDWR, 0o600)
	if errno != 0 {
		t.Fatal(errno)
	}
	unix.Close(int(fd2))
	g.next(t, "open", func(r record) bool { return r.str("path", 256) == legacy && r.i64("ret") == int64(fd2) })
}

// cString returns a NUL-terminated copy of s for a raw syscall.
func cString(s string) *byte {
	p, err := unix.BytePtrFromString(s)
	if err != nil {
		panic(err)
	}
	return p
}

func TestTraceOpenFilters(t *testing.T) {
	g := loadGadget(t, "trace_open", map[string]any{
		"target_pid":    uint32(os.Getpid()),
		"ignore_failed": true,
	}, nil)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	if _, err := os.Open(missing); err == nil {
		t.Fatal("open of a missing file succeeded")
	}
	// Another process opens a file: target_pid must hide it.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("/bin/cat", other).CombinedOutput(); err != nil {
		t.Fatalf("cat: %v: %s", err, out)
	}
	marker := filepath.Join(dir, "marker")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g.next(t, "marker open", func(r record) bool {
		switch p := r.str("path", 256); {
		case p == missing:
			t.Errorf("failed open reported despite ignore_failed")
		case r.u32("pid") != uint32(os.Getpid()):
			t.Errorf("open by pid %d (%s) reported despite target_pid", r.u32("pid"), p)
		}
		return r.str("path", 256) == marker
	})
}

// TestOptionalAttach proves the GADGET_OPTIONAL contract end to end: with
// the optional programs pointed at a tracepoint that does not exist (as
// sys_enter_open does not on arm64) the gadget still attaches and emits,
// while the same failure on a required program is an error.
func TestOptionalAttach(t *testing.T) {
	missingTP := func(names ...string) func(*ebpf.CollectionSpec) {
		return func(s *ebpf.CollectionSpec) {
			for _, n := range names {
				s.Programs[n].SectionName = "tracepoint/syscalls/sys_enter_sluice_missing"
			}
		}
	}
	g := loadGadget(t, "trace_open", map[string]any{"target_pid": uint32(os.Getpid())},
		missingTP("trace_enter_open", "trace_exit_open"))
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g.next(t, "openat with optional programs missing", func(r record) bool { return r.str("path", 256) == path })

	b, _ := Lookup("trace_open")
	spec := loadSpec(t, b.Object)
	missingTP("trace_enter_openat")(spec)
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	if err := attach(t, spec, coll); err == nil {
		t.Error("a required program failed to attach without an error")
	}
}

func TestTraceSignal(t *testing.T) {
	g := loadGadget(t, "trace_signal", nil, nil)
	child := exec.Command("/bin/sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })

	if err := unix.Kill(child.Process.Pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	r := g.next(t, "kill", func(r record) bool { return r.i32("tpid") == int32(child.Process.Pid) })
	checkCommon(t, r, os.Getpid())
	if got := r.u32("sig"); got != uint32(unix.SIGUSR1) {
		t.Errorf("sig = %d, want SIGUSR1", got)
	}
	if got := r.i64("ret"); got != 0 {
		t.Errorf("ret = %d, want 0", got)
	}

	// tgkill to a thread that does not exist fails with ESRCH.
	if err := unix.Tgkill(os.Getpid(), 0x7ffffff0, unix.SIGUSR2); err == nil {
		t.Fatal("tgkill to a missing thread succeeded")
	}
	r = g.next(t, "failed tgkill", func(r record) bool { return r.u32("sig") == uint32(unix.SIGUSR2) })
	if r.i32("tpid") != int32(os.Getpid()) || r.i64("ret") != -int64(unix.ESRCH) {
		t.Errorf("failed tgkill: tpid = %d ret = %d, want %d and -ESRCH", r.i32("tpid"), r.i64("ret"), os.Getpid())
	}

	// kill(-1 ...) style group targets keep their sign.
	unix.Kill(-0x7ffffff0, 0)
	r = g.next(t, "kill of a missing group", func(r record) bool { return r.i32("tpid") == -0x7ffffff0 })
	if r.i64("ret") != -int64(unix.ESRCH) {
		t.Errorf("kill of a missing group: ret = %d, want -ESRCH", r.i64("ret"))
	}
}

func TestTraceTCPConnect(t *testing.T) {
	g := loadGadget(t, "trace_tcpconnect", nil, nil)
	for _, tc := range []struct {
		network, addr string
		family        uint32
		version       byte
	}{
		{"tcp4", "127.0.0.1:0", unix.AF_INET, 4},
		{"tcp6", "[::1]:0", unix.AF_INET6, 6},
	} {
		t.Run(tc.network, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", tc.network, err)
			}
			defer ln.Close()
			conn, err := net.Dial(tc.network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			local := conn.LocalAddr().(*net.TCPAddr)
			remote := ln.Addr().(*net.TCPAddr)

			r := g.next(t, "connect", func(r record) bool {
				return r.u16("dport") == uint16(remote.Port) && r.u32("pid") == uint32(os.Getpid())
			})
			checkCommon(t, r, os.Getpid())
			if got := r.u16("sport"); got != uint16(local.Port) {
				t.Errorf("sport = %d, want %d", got, local.Port)
			}
			if got := r.u32("family"); got != tc.family {
				t.Errorf("family = %d, want %d", got, tc.family)
			}
			addr := func(name string) net.IP {
				raw := r.raw[r.off(name) : r.off(name)+17]
				if raw[16] != tc.version {
					t.Errorf("%s.version = %d, want %d", name, raw[16], tc.version)
				}
				if tc.version == 4 {
					return net.IP(raw[:4])
				}
				return net.IP(raw[:16])
			}
			if got := addr("daddr"); !got.Equal(remote.IP) {
				t.Errorf("daddr = %v, want %v", got, remote.IP)
			}
			if got := addr("saddr"); !got.Equal(local.IP) {
				t.Errorf("saddr = %v, want %v", got, local.IP)
			}
		})
	}

	// A refused connection is an attempt too.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if c, err := net.Dial("tcp4", ln.Addr().String()); err == nil {
		c.Close()
		t.Skip("nothing refused the connection")
	}
	r := g.next(t, "refused connect", func(r record) bool { return r.u16("dport") == uint16(closedPort) })
	if r.u16("sport") == 0 {
		t.Error("refused connect: sport = 0")
	}
}

// TestWakeupThreshold checks the header's wakeup policy: a record alone does
// not wake an epoll waiter on the ring; once 64 KiB are waiting, one does.
func TestWakeupThreshold(t *testing.T) {
	// failed_only keeps the ring empty of other processes' signals (the Go
	// runtime's preemption tgkills among them), which would otherwise make
	// the map ready before the test's own record.
	g := loadGadget(t, "trace_signal", map[string]any{"failed_only": true}, nil)
	g.rd.Close() // this test reads readiness only

	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	fd := g.coll.Maps["events"].FD()
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		t.Fatal(err)
	}
	events := make([]unix.EpollEvent, 1)

	unix.Kill(0x7ffffff0, 0) // fails with ESRCH
	n, err := unix.EpollWait(ep, events, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a single record woke the reader")
	}

	// Records are 8 bytes of header plus the struct, rounded up to 8.
	per := 8 + (g.size+7)&^7
	for i := 0; i <= 64*1024/per; i++ {
		unix.Kill(0x7ffffff0, 0)
	}
	if n, err = unix.EpollWait(ep, events, 1000); err != nil || n != 1 {
		t.Fatalf("64 KiB of records did not wake the reader: n = %d, err = %v", n, err)
	}
}

// TestLostSamples fills a one-page ring that nobody reads and checks that
// every record that did not fit is counted in events_lost_samples.
func TestLostSamples(t *testing.T) {
	g := loadGadget(t, "trace_signal", map[string]any{"failed_only": true}, func(s *ebpf.CollectionSpec) {
		s.Maps["events"].MaxEntries = uint32(os.Getpagesize())
	})
	const sent = 500
	for i := 0; i < sent; i++ {
		unix.Kill(0x7ffffff0, 0) // fails with ESRCH
	}
	var read int
	for {
		g.rd.SetDeadline(time.Now().Add(10 * time.Millisecond))
		rec, err := g.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if (record{g: g, raw: rec.RawSample}).i32("tpid") == 0x7ffffff0 {
			read++
		}
	}
	var perCPU []uint64
	if err := g.coll.Maps["events_lost_samples"].Lookup(uint32(0), &perCPU); err != nil {
		t.Fatal(err)
	}
	var lost uint64
	for _, n := range perCPU {
		lost += n
	}
	t.Logf("sent %d, read %d, lost %d", sent, read, lost)
	if read == 0 || lost == 0 || uint64(read)+lost < sent {
		t.Errorf("sent %d records, read %d and counted %d lost: some vanished silently", sent, read, lost)
	}
}

func TestTestObjectsLoad(t *testing.T) {
	requireBPF(t)
	for _, name := range []string{"plain_libbpf", "typed_ringbuf"} {
		t.Run(name, func(t *testing.T) {
			obj, _ := TestObject(name)
			spec := loadSpec(t, obj)
			coll, err := ebpf.NewCollection(spec)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			defer coll.Close()
			if err := attach(t, spec, coll); err != nil {
				t.Fatal(err)
			}
			rd, err := ringbuf.NewReader(coll.Maps["rb"])
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			unix.Getppid()
			rd.SetDeadline(time.Now().Add(5 * time.Second))
			for {
				rec, err := rd.Read()
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				raw := rec.RawSample
				if len(raw) != 32 || binary.LittleEndian.Uint32(raw) != uint32(os.Getpid()) {
					continue
				}
				if v := binary.LittleEndian.Uint64(raw[24:]); v != 0x1122334455667788 {
					t.Errorf("value = %#x, want 0x1122334455667788", v)
				}
				return
			}
		})
	}
	t.Run("verifier_reject", func(t *testing.T) {
		obj, _ := TestObject("verifier_reject")
		coll, err := ebpf.NewCollection(loadSpec(t, obj))
		if err == nil {
			coll.Close()
			t.Fatal("verifier accepted verifier_reject")
		}
		var ve *ebpf.VerifierError
		if !errors.As(err, &ve) || len(ve.Log) == 0 {
			t.Fatalf("error is not a VerifierError with a log: %v", err)
		}
	})
}
