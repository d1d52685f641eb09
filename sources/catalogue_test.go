package sources

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/gadgets"
)

// The security catalogue's gadgets, each triggered for real and read
// through the decoder as a pipeline would see it.

func TestTraceExit(t *testing.T) {
	_, c := startGadget(t, "trace_exit", nil, ParseOptions{}, nil)

	status := exec.Command("/bin/sh", "-c", "exit 7")
	if err := status.Run(); err == nil {
		t.Fatal("sh -c 'exit 7' succeeded")
	}
	ev := c.waitFor(t, "exit 7", func(ev map[string]any) bool { return num(ev["pid"]) == int64(status.Process.Pid) })
	checkEnvelope(t, ev, "trace_exit-src", "trace_exit")
	got := map[string]any{
		"tid": num(ev["tid"]), "ppid": num(ev["ppid"]), "uid": num(ev["uid"]), "comm": ev["comm"],
		"exit_code": num(ev["exit_code"]), "signal": ev["signal"], "core_dumped": ev["core_dumped"],
	}
	want := map[string]any{
		"tid": int64(status.Process.Pid), "ppid": int64(os.Getpid()), "uid": int64(os.Geteuid()), "comm": "sh",
		"exit_code": int64(7), "signal": "", "core_dumped": false,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("exit 7 event (-want +got):\n%s", diff)
	}

	// Killed by a signal after running a while: the duration covers it.
	sleeper := exec.Command("/bin/sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the exec, so that the event's comm is sleep's.
	waitUntil(t, "sleep to exec", func() bool { return running(sleeper.Process.Pid, "sleep") })
	sleeper.Process.Signal(syscall.SIGTERM)
	sleeper.Wait()
	ev = c.waitFor(t, "sleep killed by SIGTERM", func(ev map[string]any) bool { return num(ev["pid"]) == int64(sleeper.Process.Pid) })
	if ev["signal"] != "SIGTERM" || num(ev["exit_code"]) != 0 || ev["comm"] != "sleep" {
		t.Errorf("killed sleep: signal=%v exit_code=%v comm=%v, want SIGTERM 0 sleep", ev["signal"], ev["exit_code"], ev["comm"])
	}
	if d := num(ev["duration_ns"]); d <= 0 || d > int64(60e9) {
		t.Errorf("duration_ns = %d, want the sleeper's run time", d)
	}

	// A thread's exit is not a process exit: a multi-threaded process is
	// reported once, when its last thread goes.
	for _, e := range c.snapshot() {
		if num(e["pid"]) == int64(os.Getpid()) {
			t.Errorf("an exit of this (still running) test process was reported: %v", e)
		}
	}
}

// TestTraceExitFailedOnly: failed_only keeps exits with a status or signal.
func TestTraceExitFailedOnly(t *testing.T) {
	_, c := startGadget(t, "trace_exit", nil, ParseOptions{}, map[string]string{"failed_only": "true"})
	ok := exec.Command("/bin/true")
	if err := ok.Run(); err != nil {
		t.Fatal(err)
	}
	bad := exec.Command("/bin/false")
	bad.Run()
	c.waitFor(t, "exit of /bin/false", func(ev map[string]any) bool { return num(ev["pid"]) == int64(bad.Process.Pid) })
	for _, e := range c.snapshot() {
		if num(e["pid"]) == int64(ok.Process.Pid) {
			t.Errorf("a successful exit was reported with failed_only: %v", e)
		}
	}
}

// running reports whether pid runs a program whose comm is comm.
func running(pid int, comm string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return err == nil && string(b) == comm+"\n"
}

func TestTraceTCP(t *testing.T) {
	_, c := startGadget(t, "trace_tcp", nil, ParseOptions{}, nil)
	for _, tc := range []struct{ network, addr string }{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", tc.network, err)
			}
			defer ln.Close()
			client, err := net.Dial(tc.network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			cport := client.LocalAddr().(*net.TCPAddr).Port
			sport := ln.Addr().(*net.TCPAddr).Port
			ip := ln.Addr().(*net.TCPAddr).IP.String()
			client.Close()
			server.Close()

			self := map[string]any{"pid": int64(os.Getpid()), "comm": selfComm()}
			for _, want := range []struct {
				typ          string
				local, remot int
			}{
				{"connect", cport, sport},
				{"accept", sport, cport},
				{"close", cport, sport},
				{"close", sport, cport},
			} {
				ev := c.waitFor(t, fmt.Sprintf("%s %d->%d", want.typ, want.local, want.remot), func(ev map[string]any) bool {
					return ev["type"] == want.typ && num(ev["src.port"]) == int64(want.local) && num(ev["dst.port"]) == int64(want.remot)
				})
				got := map[string]any{
					"pid": num(ev["pid"]), "comm": ev["comm"],
					"src.addr": ev["src.addr"], "dst.addr": ev["dst.addr"], "src.proto": ev["src.proto"],
				}
				wantEv := map[string]any{
					"pid": self["pid"], "comm": self["comm"],
					"src.addr": ip, "dst.addr": ip, "src.proto": "TCP",
				}
				if diff := cmp.Diff(wantEv, got); diff != "" {
					t.Errorf("%s %d->%d (-want +got):\n%s", want.typ, want.local, want.remot, diff)
				}
			}
		})
	}
}

func TestTraceBind(t *testing.T) {
	_, c := startGadget(t, "trace_bind", nil, ParseOptions{}, nil)
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	ev := c.waitFor(t, "bind of a UDP socket", func(ev map[string]any) bool {
		return ev["addr.proto"] == "UDP" && ev["addr.addr"] == "127.0.0.1" && num(ev["pid"]) == int64(os.Getpid())
	})
	checkEnvelope(t, ev, "trace_bind-src", "trace_bind")
	if num(ev["addr.port"]) != 0 || num(ev["ret"]) != 0 || ev["comm"] != selfComm() || num(ev["addr.version"]) != 4 {
		t.Errorf("udp bind: port=%v ret=%v comm=%v version=%v, want 0 (as passed) 0 %s 4", ev["addr.port"], ev["ret"], ev["comm"], ev["addr.version"], selfComm())
	}

	// A second socket on a port a listener holds fails with EADDRINUSE.
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet6{Port: port, Addr: [16]byte{15: 1}}); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("bind to a held port: %v, want EADDRINUSE", err)
	}
	ev = c.waitFor(t, "failed bind", func(ev map[string]any) bool {
		return num(ev["fd"]) == int64(fd) && num(ev["addr.port"]) == int64(port) && ev["addr.addr"] == "::1"
	})
	if ev["ret_error"] != "EADDRINUSE" || ev["addr.proto"] != "TCP" || num(ev["addr.version"]) != 6 {
		t.Errorf("failed bind: ret_error=%v proto=%v version=%v, want EADDRINUSE TCP 6", ev["ret_error"], ev["addr.proto"], ev["addr.version"])
	}
}

func TestTraceMount(t *testing.T) {
	_, c := startGadget(t, "trace_mount", nil, ParseOptions{}, nil)
	dir := t.TempDir()
	if err := unix.Mount("sluice-test", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m"); err != nil {
		t.Fatal(err)
	}
	mounted := true
	defer func() {
		if mounted {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	}()
	ev := c.waitFor(t, "mount of tmpfs", func(ev map[string]any) bool { return ev["op"] == "MOUNT" && ev["dest"] == dir })
	checkEnvelope(t, ev, "trace_mount-src", "trace_mount")
	got := map[string]any{"src": ev["src"], "fs": ev["fs"], "flags": num(ev["flags"]), "ret": num(ev["ret"]), "pid": num(ev["pid"]), "comm": ev["comm"]}
	want := map[string]any{"src": "sluice-test", "fs": "tmpfs", "flags": int64(unix.MS_NOSUID | unix.MS_NODEV), "ret": int64(0), "pid": int64(os.Getpid()), "comm": selfComm()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mount event (-want +got):\n%s", diff)
	}

	// The new mount API: a clone of the tree, attached with move_mount.
	other := t.TempDir()
	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.MoveMount(tree, "", unix.AT_FDCWD, other, unix.MOVE_MOUNT_F_EMPTY_PATH)
	unix.Close(tree)
	if err != nil {
		t.Fatal(err)
	}
	ev = c.waitFor(t, "move_mount", func(ev map[string]any) bool { return ev["op"] == "MOVE_MOUNT" && ev["dest"] == other })
	if num(ev["flags"]) != unix.MOVE_MOUNT_F_EMPTY_PATH || num(ev["ret"]) != 0 {
		t.Errorf("move_mount: flags=%v ret=%v, want %d 0", ev["flags"], ev["ret"], unix.MOVE_MOUNT_F_EMPTY_PATH)
	}
	if err := unix.Unmount(other, 0); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "umount of the moved mount", func(ev map[string]any) bool { return ev["op"] == "UMOUNT" && ev["dest"] == other })
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	mounted = false
	ev = c.waitFor(t, "umount", func(ev map[string]any) bool { return ev["op"] == "UMOUNT" && ev["dest"] == dir })
	if num(ev["flags"]) != unix.MNT_DETACH || num(ev["ret"]) != 0 {
		t.Errorf("umount: flags=%v ret=%v, want MNT_DETACH 0", ev["flags"], ev["ret"])
	}

	// A file system the kernel does not know.
	if err := unix.Mount("none", dir, "sluicefs", 0, ""); err == nil {
		t.Fatal("mount of an unknown file system succeeded")
	}
	ev = c.waitFor(t, "failed mount", func(ev map[string]any) bool { return ev["fs"] == "sluicefs" })
	if ev["ret_error"] != "ENODEV" {
		t.Errorf("failed mount: ret_error = %v, want ENODEV", ev["ret_error"])
	}
}

// setuidChildEnv makes the test binary, run by TestTraceSetuid, drop to
// nobody and then fail to become root again.
const setuidChildEnv = "SLUICE_SOURCES_TEST_SETUID_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(setuidChildEnv) == "1" {
		// Raw syscalls on one thread: the process exits right after.
		runtime.LockOSThread()
		_, _, e1 := unix.RawSyscall(unix.SYS_SETRESUID, 65534, 65534, 65534)
		_, _, e2 := unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0)
		if e1 != 0 || e2 != unix.EPERM {
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTraceSetuid drops a child's privileges (a child: a thread of the
// test process with other credentials could be the main thread, whose
// credentials the process's capabilities are read from) and sees it fail
// to regain them.
func TestTraceSetuid(t *testing.T) {
	_, c := startGadget(t, "trace_setuid", nil, ParseOptions{}, nil)
	const nobody = 65534
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self, "-test.run=^$")
	child.Env = append(os.Environ(), setuidChildEnv+"=1")
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("setuid child: %v\n%s", err, out)
	}
	pid := child.Process.Pid
	ev := c.waitFor(t, "setresuid", func(ev map[string]any) bool { return num(ev["pid"]) == int64(pid) && ev["op"] == "SETRESUID" })
	checkEnvelope(t, ev, "trace_setuid-src", "trace_setuid")
	got := map[string]any{
		"uid": num(ev["uid"]), "euid": num(ev["euid"]),
		"new_uid": num(ev["new_uid"]), "new_euid": num(ev["new_euid"]), "new_uid_user": ev["new_uid_user"], "ret": num(ev["ret"]),
	}
	want := map[string]any{
		"uid": int64(0), "euid": int64(0),
		"new_uid": int64(nobody), "new_euid": int64(nobody), "new_uid_user": "nobody", "ret": int64(0),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("setresuid event (-want +got):\n%s", diff)
	}
	if args, _ := ev["args"].([]any); len(args) != 3 || num(args[0]) != nobody || num(args[1]) != nobody || num(args[2]) != nobody {
		t.Errorf("args = %v, want [65534 65534 65534]", ev["args"])
	}
	ev = c.waitFor(t, "failed setuid(0)", func(ev map[string]any) bool { return num(ev["pid"]) == int64(pid) && ev["op"] == "SETUID" })
	if ev["ret_error"] != "EPERM" || num(ev["uid"]) != nobody || num(ev["new_uid"]) != nobody {
		t.Errorf("setuid(0) as nobody: ret_error=%v uid=%v new_uid=%v, want EPERM, 65534 and 65534", ev["ret_error"], ev["uid"], ev["new_uid"])
	}
	if args, _ := ev["args"].([]any); len(args) != 3 || num(args[0]) != 0 || num(args[1]) != -1 {
		t.Errorf("setuid args = %v, want [0 -1 -1]", ev["args"])
	}
}

func TestTraceBPF(t *testing.T) {
	_, c := startGadget(t, "trace_bpf", nil, ParseOptions{}, nil)
	// Program names hold at most 15 bytes.
	id6 := rand.Uint32() % 1e6
	name, bad := fmt.Sprintf("sluice_%06d", id6), fmt.Sprintf("s_bad_%06d", id6)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         name,
		Type:         ebpf.SocketFilter,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	ev := c.waitFor(t, "load of "+name, func(ev map[string]any) bool { return ev["prog_name"] == name && ev["cmd"] == "BPF_PROG_LOAD" })
	checkEnvelope(t, ev, "trace_bpf-src", "trace_bpf")
	got := map[string]any{"pid": num(ev["pid"]), "prog_type": ev["prog_type"], "prog_id": num(ev["prog_id"]), "insn_cnt": num(ev["insn_cnt"]), "ret": num(ev["ret"]) >= 0}
	want := map[string]any{"pid": int64(os.Getpid()), "prog_type": "BPF_PROG_TYPE_SOCKET_FILTER", "prog_id": int64(id), "insn_cnt": int64(2), "ret": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("prog load event (-want +got):\n%s", diff)
	}

	// A program the verifier refuses (it never sets R0) is reported with
	// the caller's attributes and the error.
	if _, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: bad, Type: ebpf.SocketFilter, License: "GPL", Instructions: asm.Instructions{asm.Return()}}); err == nil {
		t.Fatal("the verifier accepted a program that returns an uninitialised R0")
	}
	ev = c.waitFor(t, "failed load of "+bad, func(ev map[string]any) bool { return ev["prog_name"] == bad && num(ev["ret"]) < 0 })
	if ev["prog_type"] != "BPF_PROG_TYPE_SOCKET_FILTER" || num(ev["prog_id"]) != 0 || ev["ret_error"] != "EACCES" {
		t.Errorf("failed load: prog_type=%v prog_id=%v ret_error=%v, want BPF_PROG_TYPE_SOCKET_FILTER 0 EACCES", ev["prog_type"], ev["prog_id"], ev["ret_error"])
	}
}

// builtinObject returns a built-in's object.
func builtinObject(t *testing.T, name string) []byte {
	t.Helper()
	b, ok := gadgets.Lookup(name)
	if !ok {
		t.Fatalf("no built-in %q", name)
	}
	return b.Object
}

// TestSnapshotProcessDecoded takes one snapshot through the pipeline's
// decoder: the sleeping child is a row, with its names rendered and its
// mount namespace on the event for container identity.
func TestSnapshotProcessDecoded(t *testing.T) {
	child := exec.Command("/bin/sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	c := runUntilDone(t, "snapshot_process", builtinObject(t, "snapshot_process"), GadgetConfig{Runs: 1})
	ev := find(c.snapshot(), func(ev map[string]any) bool { return num(ev["pid"]) == int64(child.Process.Pid) })
	if ev == nil {
		t.Fatal("the child is not in the snapshot")
	}
	if ev["comm"] != "sleep" || ev["exe"] != "sleep" || num(ev["ppid"]) != int64(os.Getpid()) || num(ev["snapshot"]) != 1 {
		t.Errorf("child row: comm %v exe %v ppid %v snapshot %v", ev["comm"], ev["exe"], ev["ppid"], ev["snapshot"])
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, raw := range c.raw {
		if num(c.events[i]["pid"]) == int64(child.Process.Pid) && uint64(raw.MntNS) != uint64(num(c.events[i]["mntns_id"])) {
			t.Errorf("Event.MntNS = %d, the row's mntns_id %v", raw.MntNS, c.events[i]["mntns_id"])
		}
	}
}

// TestTopTCPDecoded drains top_tcp through the map iterator: the
// connection's bytes per side, with the process and its namespace.
func TestTopTCPDecoded(t *testing.T) {
	_, c := startGadgetWith(t, "top_tcp", nil, ParseOptions{}, GadgetConfig{Interval: 100 * time.Millisecond, Filter: Filter{PID: uint32(os.Getpid())}}, &collector{})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client.Write(make([]byte, 777))
	io.ReadFull(server, make([]byte, 777))
	cport := int64(client.LocalAddr().(*net.TCPAddr).Port)
	ev := c.waitFor(t, "the client's row", func(ev map[string]any) bool {
		return num(ev["src.port"]) == cport && num(ev["sent"]) > 0
	})
	if num(ev["sent"]) != 777 || num(ev["pid"]) != int64(os.Getpid()) || ev["comm"] != selfComm() {
		t.Errorf("client row: sent %v pid %v comm %v, want 777, %d, %s", ev["sent"], ev["pid"], ev["comm"], os.Getpid(), selfComm())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, raw := range c.raw {
		if raw.MntNS == 0 || uint64(raw.MntNS) != uint64(num(c.events[i]["mntns_id"])) {
			t.Fatalf("Event.MntNS = %d, the row's mntns_id %v: a map iterator's rows carry their namespace", raw.MntNS, c.events[i]["mntns_id"])
		}
	}
}
