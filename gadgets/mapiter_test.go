package gadgets

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// loadAttached loads a built-in with params and attaches its tracepoint
// programs, for gadgets whose output is a map user space reads.
func loadAttached(t *testing.T, name string, params map[string]any) (*ebpf.Collection, *ebpf.CollectionSpec) {
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
	t.Cleanup(func() { coll.Close() })
	if err := attach(t, spec, coll); err != nil {
		t.Fatal(err)
	}
	return coll, spec
}

// entry is one key and value of a drained map, read by BTF offsets.
type entry struct{ key, value record }

// entries reads every entry of map m, whose key and value are the structs
// keyType and valueType.
func entries(t *testing.T, spec *ebpf.CollectionSpec, m *ebpf.Map, keyType, valueType string) []entry {
	t.Helper()
	layout := func(name string) *gadget {
		var st *btf.Struct
		if err := spec.Types.TypeByName(name, &st); err != nil {
			t.Fatal(err)
		}
		g := &gadget{fields: map[string]btf.Member{}, size: int(st.Size)}
		for _, mb := range st.Members {
			g.fields[mb.Name] = mb
		}
		return g
	}
	kg, vg := layout(keyType), layout(valueType)
	var out []entry
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		out = append(out, entry{record{g: kg, raw: append([]byte(nil), k...)}, record{g: vg, raw: append([]byte(nil), v...)}})
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTopFile(t *testing.T) {
	coll, spec := loadAttached(t, "top_file", map[string]any{"targ_pid": uint32(os.Getpid())})
	path := filepath.Join(t.TempDir(), "top-file-data")
	data := make([]byte, 3000)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || len(got) != len(data) {
		t.Fatalf("read back %d bytes: %v", len(got), err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	var found *entry
	es := entries(t, spec, coll.Maps["stats"], "file_key", "file_stat")
	for i, e := range es {
		if e.key.u64("ino") == st.Ino {
			found = &es[i]
		}
		if e.key.u32("pid") != uint32(os.Getpid()) {
			t.Errorf("targ_pid=%d let pid %d through", os.Getpid(), e.key.u32("pid"))
		}
	}
	if found == nil {
		t.Fatalf("no entry for inode %d among %d", st.Ino, len(es))
	}
	v := found.value
	if v.u64("wbytes") != 3000 || v.u64("rbytes") != 3000 || v.u64("writes") < 1 || v.u64("reads") < 1 {
		t.Errorf("writes %d (%d bytes), reads %d (%d bytes); want 3000 bytes each way", v.u64("writes"), v.u64("wbytes"), v.u64("reads"), v.u64("rbytes"))
	}
	if v.str("file", 256) != "top-file-data" || v.u32("type") != 0 || v.str("comm", 16) != selfComm() {
		t.Errorf("file %q type %d comm %q, want top-file-data, REGULAR (0), %q", v.str("file", 256), v.u32("type"), v.str("comm", 16), selfComm())
	}
}

func TestTopTCP(t *testing.T) {
	coll, spec := loadAttached(t, "top_tcp", map[string]any{"targ_pid": uint32(os.Getpid())})
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
	if _, err := client.Write(make([]byte, 1234)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, 1234)); err != nil {
		t.Fatal(err)
	}
	cport := uint16(client.LocalAddr().(*net.TCPAddr).Port)
	sport := uint16(ln.Addr().(*net.TCPAddr).Port)
	byPorts := map[[2]uint16]entry{}
	for _, e := range entries(t, spec, coll.Maps["stats"], "conn_key", "conn_stat") {
		byPorts[[2]uint16{e.key.u16at("src", 16), e.key.u16at("dst", 16)}] = e
	}
	c, ok := byPorts[[2]uint16{cport, sport}]
	if !ok || c.value.u64("sent") != 1234 || c.value.u64("received") != 0 {
		t.Errorf("client %d->%d: %v sent %d received %d, want 1234 and 0", cport, sport, ok, c.value.u64("sent"), c.value.u64("received"))
	}
	s, ok := byPorts[[2]uint16{sport, cport}]
	if !ok || s.value.u64("received") != 1234 || s.value.u64("sent") != 0 {
		t.Errorf("server %d<-%d: %v received %d sent %d, want 1234 and 0", sport, cport, ok, s.value.u64("received"), s.value.u64("sent"))
	}
	if ok && (s.key.u32("pid") != uint32(os.Getpid()) || binary.LittleEndian.Uint32(s.key.raw[s.key.off("src"):]) != 0x0100007f) {
		t.Errorf("server key pid %d addr %#x, want %d 127.0.0.1", s.key.u32("pid"), binary.LittleEndian.Uint32(s.key.raw[s.key.off("src"):]), os.Getpid())
	}
}

// TestProfileBlockIO writes with O_DIRECT and fsync, so that requests
// reach the block device under the test's directory, and finds them in
// that device's histogram.
func TestProfileBlockIO(t *testing.T) {
	coll, spec := loadAttached(t, "profile_blockio", nil)
	dir, err := os.MkdirTemp(".", "blockio-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(filepath.Join(dir, "data"), unix.O_CREAT|unix.O_WRONLY|unix.O_DIRECT, 0o600)
	if err != nil {
		t.Skipf("O_DIRECT is not supported here: %v", err)
	}
	buf, err := unix.Mmap(-1, 0, 1<<16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE) // page-aligned
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	for range 8 {
		if _, err := unix.Write(fd, buf); err != nil {
			t.Fatal(err)
		}
	}
	unix.Fsync(fd)
	unix.Close(fd)
	wantDev := unix.Major(st.Dev)<<20 | unix.Minor(st.Dev)
	var total uint64
	for _, e := range entries(t, spec, coll.Maps["latencies"], "hist_key", "hist") {
		if e.key.u32("dev") != wantDev {
			continue
		}
		off := e.value.off("latency")
		for i := range 27 {
			total += uint64(binary.LittleEndian.Uint32(e.value.raw[off+4*i:]))
		}
	}
	if total < 1 {
		t.Errorf("no completed request in the histogram of device %d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	}
}

// selfComm is the kernel's comm of this test binary.
func selfComm() string {
	c := filepath.Base(os.Args[0])
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}
