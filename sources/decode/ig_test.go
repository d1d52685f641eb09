package decode

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// fakeStacks renders every stack with one frame naming the id.
type fakeStacks struct{}

func (fakeStacks) KernelStack(id int32) string { return fmt.Sprintf("[0]kframe%d; ", id) }
func (fakeStacks) UserStack(s UserStack) string {
	return fmt.Sprintf("[0]uframe%d@%d; ", s.StackID, s.Pid)
}

// noKernelTypes is a BTF spec without types, so enum renderings use the
// gadget's own enums whatever kernel runs the test.
func noKernelTypes(t *testing.T) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// eventStruct returns struct event of a test gadget object.
func eventStruct(t *testing.T, object string) *btf.Struct {
	t.Helper()
	elf, err := gadgets.TestObject(object)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf))
	if err != nil {
		t.Fatal(err)
	}
	var st *btf.Struct
	if err := cs.Types.TypeByName("event", &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// recordWriter sets members of a record by dotted path, at the offsets the
// struct's BTF gives them.
type recordWriter struct {
	t   *testing.T
	st  *btf.Struct
	rec []byte
}

func (w *recordWriter) at(path string) (int, btf.Type) {
	var t btf.Type = w.st
	off := 0
	for _, name := range strings.Split(path, ".") {
		var ms []btf.Member
		switch c := btf.UnderlyingType(t).(type) {
		case *btf.Struct:
			ms = c.Members
		case *btf.Union:
			ms = c.Members
		}
		found := false
		for _, m := range ms {
			if m.Name == name {
				off += int(m.Offset / 8)
				t, found = m.Type, true
				break
			}
		}
		if !found {
			w.t.Fatalf("struct %s has no member %s", w.st.Name, path)
		}
	}
	return off, t
}

func (w *recordWriter) uint(path string, v uint64) {
	off, t := w.at(path)
	size, _ := btf.Sizeof(t)
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], v)
	copy(w.rec[off:off+size], b[:size])
}

func (w *recordWriter) bytes(path string, v []byte) {
	off, _ := w.at(path)
	copy(w.rec[off:], v)
}

// unflatten turns sluice's dotted keys into nested objects, the shape of
// `ig -o json`: {"proc.comm": x} becomes {"proc": {"comm": x}}.
func unflatten(flat map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range flat {
		m := out
		parts := strings.Split(k, ".")
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = v
	}
	return out
}

// TestIGFieldRenderingExactJSON decodes one record of the IG-style test
// gadget (gadgets/testdata/ig_fields.bpf.c), which has a member of every
// special type spelled as IG's gadgets spell them, and asserts the exact
// JSON Inspektor Gadget's rendering gives for it (nested as `ig -o json`
// nests it; sluice's keys are the dotted paths of the same fields).
func TestIGFieldRenderingExactJSON(t *testing.T) {
	st := eventStruct(t, "ig_fields")
	opts := testOpts
	opts.Location = time.UTC
	opts.Stacks = fakeStacks{}
	opts.KernelTypes = noKernelTypes(t)
	p, err := Compile(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	w := &recordWriter{t: t, st: st, rec: make([]byte, st.Size)}
	w.uint("timestamp_raw", 5_000_000_000) // 5 s after boot
	w.bytes("proc.comm", []byte("cat\x00"))
	w.uint("proc.pid", 42)
	w.uint("proc.tid", 43)
	w.uint("proc.mntns_id", 4026531840)
	w.uint("proc.creds.uid", 0)
	w.uint("proc.creds.gid", 0)
	w.bytes("proc.parent.comm", []byte("bash\x00"))
	w.uint("proc.parent.pid", 1)
	w.uint("error_raw", 2)
	w.uint("sig_raw", 10)
	nr := syscallNumber("getpgid")
	w.uint("syscall_raw", nr)
	w.uint("size_raw", 10240)
	w.uint("latency_raw", 1_500_000)
	w.uint("owner_raw", 0)
	w.uint("owner_group_raw", 4242)
	w.uint("type_raw", 2)
	w.uint("flags_raw", 0x241)
	w.bytes("local.addr_raw", []byte{127, 0, 0, 1})
	w.uint("local.version", 4)
	w.bytes("remote.addr_raw", append(make([]byte, 15), 1))
	w.uint("remote.port", 53)
	w.uint("remote.proto_raw", 17)
	w.uint("remote.version", 6)
	w.uint("kstack_raw", 5)
	w.uint("ustack_raw.stack_id", 9)
	w.uint("ustack_raw.tgid_level0", 42)
	w.uint("ustack_raw.pid_level0", 43)
	w.uint("ustack_raw.inode", 777)
	w.uint("netns_id", 4026531992)
	w.uint("calls", 7)
	w.uint("ok", 1)
	w.bytes("name", []byte("ig-style\x00"))

	js, err := codec.AppendJSON(nil, p.Append(nil, w.rec, 1, fixedNow))
	if err != nil {
		t.Fatal(err)
	}
	var flat map[string]any
	if err := json.Unmarshal(js, &flat); err != nil {
		t.Fatal(err)
	}
	if flat["time"] != "2023-11-14T22:13:25Z" {
		t.Errorf("envelope time = %v, want the event's timestamp", flat["time"])
	}
	for _, k := range envelopeKeys {
		delete(flat, k)
	}
	want := `{
		"timestamp": "2023-11-14T22:13:25.000000000Z", "timestamp_raw": 1700000005000000000,
		"proc": {"comm": "cat", "pid": 42, "tid": 43, "mntns_id": 4026531840,
			"creds": {"uid": 0, "user": "root", "gid": 0, "group": "wheel"},
			"parent": {"comm": "bash", "pid": 1}},
		"error": "ENOENT", "error_raw": 2,
		"sig": "SIGUSR1", "sig_raw": 10,
		"syscall": "SYS_GETPGID", "syscall_raw": NR,
		"size": "10 kB", "size_raw": 10240,
		"latency": "1.50ms", "latency_raw": 1500000,
		"owner": "root", "owner_raw": 0,
		"owner_group": "gid:4242", "owner_group_raw": 4242,
		"type": "EV_CLOSE", "type_raw": 2,
		"flags": "FLAG_RD|FLAG_WR|FLAG_CREAT|FLAG_TRUNC", "flags_raw": 577,
		"local": {"addr": "127.0.0.1", "version": 4},
		"remote": {"addr": "::1", "port": 53, "proto": "UDP", "proto_raw": 17, "version": 6},
		"kstack": "[0]kframe5; ", "kstack_raw": 5,
		"ustack": "[0]uframe9@42; ",
		"ustack_raw": {"major": 0, "minor": 0, "inode": 777, "mtime_sec": 0, "mtime_nsec": 0,
			"base_addr_hash": 0, "stack_id": 9, "tgid_level0": 42, "pid_level0": 43,
			"pidns_level0": 0, "pid_level1": 0, "pidns_level1": 0, "otel_correlation_id": 0,
			"boot_timestamp": 0},
		"netns_id": 4026531992, "calls": 7, "ok": true, "name": "ig-style"
	}`
	var wantMap map[string]any
	if err := json.Unmarshal([]byte(strings.Replace(want, "NR", fmt.Sprint(nr), 1)), &wantMap); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantMap, unflatten(flat)); diff != "" {
		t.Errorf("IG rendering (-want +got):\n%s", diff)
	}
}

// TestIGRenderingOfUnknownValues: values without a name render as IG
// renders them (error#N, signal#N, SYS_UNKNOWN, UNKNOWN, proto#N, uid:N).
func TestIGRenderingOfUnknownValues(t *testing.T) {
	st := eventStruct(t, "ig_fields")
	opts := testOpts
	opts.Location = time.UTC
	opts.KernelTypes = noKernelTypes(t)
	p, err := Compile(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	w := &recordWriter{t: t, st: st, rec: make([]byte, st.Size)}
	w.uint("error_raw", 4000)
	w.uint("sig_raw", 40)
	w.uint("syscall_raw", 60000)
	w.uint("owner_raw", 31337)
	w.uint("type_raw", 9)
	w.uint("remote.proto_raw", 250)
	w.uint("remote.version", 6)
	w.uint("size_raw", 9)
	w.uint("latency_raw", 999)
	var got map[string]any
	js, err := codec.AppendJSON(nil, p.Append(nil, w.rec, 1, fixedNow))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"error": "error#4000", "sig": "signal#40", "syscall": "SYS_UNKNOWN", "owner": "uid:31337",
		"type": "UNKNOWN", "remote.proto": "proto#250", "size": "9 B", "latency": "999ns",
		"timestamp": "", "kstack": "", "ustack": "", "flags": "FLAG_RD",
	} {
		if got[k] != want {
			t.Errorf("%s = %#v, want %#v", k, got[k], want)
		}
	}
}

func TestHumanBytesAndDurations(t *testing.T) {
	for v, want := range map[uint64]string{0: "0 B", 9: "9 B", 10: "10 B", 999: "999 B", 1000: "1.0 kB", 1500: "1.5 kB", 10240: "10 kB", 999_999: "1000 kB", 1_000_000: "1.0 MB", 5 << 30: "5.4 GB"} {
		if got := string(appendHumanBytes(nil, v)); got != want {
			t.Errorf("bytes %d = %q, want %q", v, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "0ns", 999: "999ns", 1500: "1.50µs", 2_500_000: "2.50ms", 3 * time.Second / 2: "1.5s", 90 * time.Minute: "1h30m0s"} {
		if got := string(appendDuration(nil, d)); got != want {
			t.Errorf("duration %v = %q, want %q", int64(d), got, want)
		}
	}
}

// BenchmarkDecodeIGFields decodes the IG-style record with every special
// type (IG's renderings: local-zone timestamp, humanized bytes and
// durations, SYS_ names, flag sets, endpoints), stacks resolved by a fake.
func BenchmarkDecodeIGFields(b *testing.B) {
	t := &testing.T{}
	st := eventStruct(t, "ig_fields")
	opts := testOpts
	opts.Stacks = fakeStacks{}
	opts.KernelTypes = noKernelTypes(t)
	p, err := Compile(st, opts)
	if err != nil {
		b.Fatal(err)
	}
	w := &recordWriter{t: t, st: st, rec: make([]byte, st.Size)}
	w.uint("timestamp_raw", 5_000_000_000)
	w.bytes("proc.comm", []byte("cat\x00"))
	w.uint("error_raw", 2)
	w.uint("sig_raw", 10)
	w.uint("syscall_raw", syscallNumber("getpgid"))
	w.uint("size_raw", 10240)
	w.uint("latency_raw", 1_500_000)
	w.uint("flags_raw", 0x241)
	w.uint("local.version", 4)
	w.uint("remote.version", 6)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(st.Size))
	for b.Loop() {
		buf = p.Append(buf[:0], w.rec, 1, fixedNow)
	}
}
