package gadgets

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// runIter loads a built-in with params set, runs its iterator program
// prog once and returns the elements it wrote, split by the size of
// struct elem. Nothing else of the gadget is attached.
func runIter(t *testing.T, name, prog, elem string, params map[string]any) []record {
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
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("load %s: %+v", name, ve)
		}
		t.Fatalf("load %s: %v", name, err)
	}
	defer coll.Close()
	it, err := link.AttachIter(link.IterOptions{Program: coll.Programs[prog]})
	if err != nil {
		t.Fatalf("attach iterator %s: %v", prog, err)
	}
	defer it.Close()
	rd, err := it.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	raw, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	var st *btf.Struct
	if err := spec.Types.TypeByName(elem, &st); err != nil {
		t.Fatal(err)
	}
	g := &gadget{fields: map[string]btf.Member{}, size: int(st.Size)}
	for _, m := range st.Members {
		g.fields[m.Name] = m
	}
	if len(raw)%g.size != 0 {
		t.Fatalf("iterator wrote %d bytes, not a multiple of struct %s (%d)", len(raw), elem, g.size)
	}
	var out []record
	for off := 0; off < len(raw); off += g.size {
		out = append(out, record{g: g, raw: raw[off : off+g.size]})
	}
	return out
}

func TestSnapshotProcess(t *testing.T) {
	child := exec.Command("/bin/sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	recs := runIter(t, "snapshot_process", "snapshot_task", "process", nil)
	var found *record
	for i, r := range recs {
		if r.u32("pid") == uint32(child.Process.Pid) {
			found = &recs[i]
		}
		if r.u32("pid") != r.u32("tid") {
			t.Errorf("a thread (pid %d tid %d) listed without threads=true", r.u32("pid"), r.u32("tid"))
		}
	}
	if found == nil {
		t.Fatalf("the sleeping child %d is not in a snapshot of %d processes", child.Process.Pid, len(recs))
	}
	if got := found.str("comm", 16); got != "sleep" {
		t.Errorf("comm = %q, want sleep", got)
	}
	if got := found.str("exe", 256); got != "sleep" {
		t.Errorf("exe = %q, want sleep", got)
	}
	if got := found.u32("ppid"); got != uint32(os.Getpid()) {
		t.Errorf("ppid = %d, want %d", got, os.Getpid())
	}
	if found.u64("started") == 0 || found.u64("mntns_id") == 0 {
		t.Errorf("started %d, mntns_id %d: want both set", found.u64("started"), found.u64("mntns_id"))
	}

	// With threads, this multi-threaded test process shows several rows;
	// with a pid filter, only that process does.
	recs = runIter(t, "snapshot_process", "snapshot_task", "process", map[string]any{"threads": true, "targ_pid": uint32(os.Getpid())})
	if len(recs) < 2 {
		t.Errorf("threads=true with targ_pid=self: %d rows, want this process's threads", len(recs))
	}
	for _, r := range recs {
		if r.u32("pid") != uint32(os.Getpid()) {
			t.Errorf("targ_pid=%d let pid %d through", os.Getpid(), r.u32("pid"))
		}
	}
}

func TestSnapshotSocket(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	udp, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer udp.Close()
	tport, uport := ln.Addr().(*net.TCPAddr).Port, udp.LocalAddr().(*net.UDPAddr).Port
	tino := socketInode(t, ln.(*net.TCPListener))
	conn, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cport := conn.LocalAddr().(*net.TCPAddr).Port

	tcp := runIter(t, "snapshot_socket", "snapshot_tcp", "socket_entry", nil)
	udps := runIter(t, "snapshot_socket", "snapshot_udp", "socket_entry", nil)
	find := func(recs []record, port int, state uint32) *record {
		for i, r := range recs {
			if int(r.u16at("src", 16)) == port && r.u32("state") == state {
				return &recs[i]
			}
		}
		return nil
	}
	const listen, established, closed = 10, 1, 7
	l := find(tcp, tport, listen)
	if l == nil {
		t.Fatalf("the listener on port %d is not among %d TCP sockets", tport, len(tcp))
	}
	if got := l.u64("ino"); got != tino {
		t.Errorf("listener ino = %d, want %d (fstat)", got, tino)
	}
	if l.u16at("src", 18) != unix.IPPROTO_TCP || l.u8at("src", 20) != 4 || l.u32("uid") != uint32(os.Getuid()) {
		t.Errorf("listener proto %d version %d uid %d, want TCP 4 %d", l.u16at("src", 18), l.u8at("src", 20), l.u32("uid"), os.Getuid())
	}
	if c := find(tcp, cport, established); c == nil || int(c.u16at("dst", 16)) != tport {
		t.Errorf("the client connection %d -> %d is not in the snapshot: %v", cport, tport, c)
	}
	u := find(udps, uport, closed)
	if u == nil || u.u8at("src", 20) != 6 || u.u16at("src", 18) != unix.IPPROTO_UDP {
		t.Errorf("the UDP socket on [::1]:%d is not in the snapshot as UDP over IPv6: %v", uport, u)
	}

	// listening_only drops the connection but keeps the listener.
	tcp = runIter(t, "snapshot_socket", "snapshot_tcp", "socket_entry", map[string]any{"listening_only": true})
	if find(tcp, cport, established) != nil || find(tcp, tport, listen) == nil {
		t.Error("listening_only: want the listener and not the connection")
	}
}

func socketInode(t *testing.T, l *net.TCPListener) uint64 {
	t.Helper()
	raw, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	raw.Control(func(fd uintptr) { err = unix.Fstat(int(fd), &st) })
	if err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// u16at reads a __u16 at byte off inside struct member name.
func (r record) u16at(name string, off int) uint16 {
	return binary.LittleEndian.Uint16(r.raw[r.off(name)+off:])
}

// u8at reads the byte at off inside struct member name.
func (r record) u8at(name string, off int) uint8 { return r.raw[r.off(name)+off] }
