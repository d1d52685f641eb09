package decode

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// execShaped mirrors trace_exec's event: the shape the budget is
// stated for.
func execShaped() (*btf.Struct, []byte) {
	st := &btf.Struct{Name: "event", Size: 1840, Members: []btf.Member{
		member("timestamp", typedef("gadget_timestamp", u64), 0),
		member("mntns_id", typedef("gadget_mntns_id", u64), 8),
		member("pid", typedef("gadget_pid", u32), 16),
		member("ppid", typedef("gadget_ppid", u32), 20),
		member("uid", typedef("gadget_uid", u32), 24),
		member("gid", typedef("gadget_gid", u32), 28),
		member("comm", &btf.Array{Type: typedef("gadget_comm", char), Nelems: 16}, 32),
		member("filename", &btf.Array{Type: char, Nelems: 256}, 48),
		member("ret", typedef("gadget_ret", s64), 304),
		member("args", &btf.Array{Type: typedef("gadget_strlist", char), Nelems: 1536}, 312),
	}}
	rec := make([]byte, 312)
	binary.NativeEndian.PutUint64(rec[0:], 123_456_789_000)
	binary.NativeEndian.PutUint64(rec[8:], 4026531840)
	binary.NativeEndian.PutUint32(rec[16:], 4242)
	binary.NativeEndian.PutUint32(rec[20:], 1)
	copy(rec[32:], "bash")
	copy(rec[48:], "/usr/bin/curl")
	rec = append(rec, "curl\x00-sS\x00--max-time\x0010\x00https://example.com/\x00"...)
	return st, rec
}

func BenchmarkDecodeEncodeExec(b *testing.B) {
	st, rec := execShaped()
	p, err := Compile(st, testOpts)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		buf = p.Append(buf[:0], rec, 1, now)
	}
}

// BenchmarkDecodeEncodeExecCopy adds what the reader does per event: copy
// the encoding into its own slice (the reader amortises this with an
// arena; this is the worst case).
func BenchmarkDecodeEncodeExecCopy(b *testing.B) {
	st, rec := execShaped()
	p, err := Compile(st, testOpts)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf = p.Append(buf[:0], rec, 1, now)
		ev := make([]byte, len(buf))
		copy(ev, buf)
	}
}

func BenchmarkDecodeExecToJSON(b *testing.B) {
	st, rec := execShaped()
	p, err := Compile(st, testOpts)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	js := make([]byte, 0, 4096)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf = p.Append(buf[:0], rec, 1, now)
		js, _ = codec.AppendJSON(js[:0], buf)
	}
}

// BenchmarkDecodeTaggedUnion is the hinted path of plain libbpf objects: a
// tagged union (the map header patched per record) and strings counted by
// a member, beside BenchmarkDecodeEncodeExec's fixed-key path.
func BenchmarkDecodeTaggedUnion(b *testing.B) {
	st := taggedStruct()
	opts := testOpts
	opts.Fields = map[string]FieldHint{"u": {Tag: "kind", Cases: map[string]string{"EVENT_EXEC": "exec", "EVENT_EXIT": "exit"}}}
	p, err := Compile(st, opts)
	if err != nil {
		b.Fatal(err)
	}
	rec := make([]byte, 28)
	binary.NativeEndian.PutUint32(rec[0:], 1)
	copy(rec[12:], "/bin/sh")
	buf := make([]byte, 0, 1024)
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		buf = p.Append(buf[:0], rec, 1, now)
	}
}
