package decode

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/syscalls"

	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

var (
	u8    = &btf.Int{Name: "unsigned char", Size: 1}
	u16   = &btf.Int{Name: "unsigned short", Size: 2}
	u32   = &btf.Int{Name: "unsigned int", Size: 4}
	u64   = &btf.Int{Name: "long long unsigned int", Size: 8}
	s8    = &btf.Int{Name: "signed char", Size: 1, Encoding: btf.Signed}
	s32   = &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	s64   = &btf.Int{Name: "long long int", Size: 8, Encoding: btf.Signed}
	char  = &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	boolT = &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}
)

func typedef(name string, t btf.Type) *btf.Typedef { return &btf.Typedef{Name: name, Type: t} }

func member(name string, t btf.Type, byteOff uint32) btf.Member {
	return btf.Member{Name: name, Type: t, Offset: btf.Bits(byteOff * 8)}
}

type fixedUsers struct{}

func (fixedUsers) User(uid uint32) string {
	if uid == 0 {
		return "root"
	}
	return ""
}
func (fixedUsers) Group(gid uint32) string {
	if gid == 0 {
		return "wheel"
	}
	return ""
}

var testOpts = Options{Gadget: "g", Source: "s", Host: "h", Users: fixedUsers{}, BootOffset: time.Duration(1_700_000_000) * time.Second}

var fixedNow = time.Date(2026, 11, 22, 10, 0, 0, 123, time.UTC)

// decodeOne compiles t, encodes rec and decodes the result, checking the
// output is exactly one msgpack value and the envelope comes first.
func decodeOne(t *testing.T, typ btf.Type, rec []byte) map[string]any {
	t.Helper()
	p, err := Compile(typ, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	out := p.Append(nil, rec, 7, fixedNow)
	n, err := codec.Skip(out)
	if err != nil || n != len(out) {
		t.Fatalf("Append produced %d bytes, Skip consumed %d (%v)", len(out), n, err)
	}
	var keys []string
	if err := codec.Each(out, func(k, _ []byte) bool { keys = append(keys, string(k)); return true }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"time", "host", "source", "gadget", "seq"}, keys[:5]); diff != "" {
		t.Errorf("envelope order (-want +got):\n%s", diff)
	}
	var schemaKeys []string
	for _, f := range p.Schema().Fields {
		schemaKeys = append(schemaKeys, f.Name)
	}
	if diff := cmp.Diff(schemaKeys, keys); diff != "" {
		t.Errorf("schema and encoded keys differ (-schema +encoded):\n%s", diff)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"host", "source", "gadget"} {
		if m[k] != k[:1] {
			t.Errorf("envelope %s = %v", k, m[k])
		}
		delete(m, k)
	}
	if toInt(m["seq"]) != 7 {
		t.Errorf("seq = %#v, want 7", m["seq"])
	}
	delete(m, "seq")
	return m
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func TestScalarsPaddingAndEnvelopeTime(t *testing.T) {
	st := &btf.Struct{Name: "event", Size: 24, Members: []btf.Member{
		member("a", u8, 0),
		member("b", u32, 4), // 3 bytes of padding before
		member("c", s64, 8),
		member("flag", boolT, 16),
		member("small", s8, 17),
		member("__hidden", u32, 20),
	}}
	rec := make([]byte, 24)
	rec[0] = 200
	binary.NativeEndian.PutUint32(rec[4:], 0xdeadbeef)
	binary.NativeEndian.PutUint64(rec[8:], uint64(^uint64(41))) // -42
	rec[16] = 1
	rec[17] = 0xff                   // -1
	rec[1], rec[2], rec[3] = 9, 9, 9 // padding must not leak
	binary.NativeEndian.PutUint32(rec[20:], 5)
	got := decodeOne(t, st, rec)
	want := map[string]any{
		"time": "2026-11-22T10:00:00.000000123Z",
		"a":    uint8(200), "b": uint32(0xdeadbeef), "c": int8(-42), "flag": true, "small": int8(-1),
	}
	if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCharsArraysNestedUnions(t *testing.T) {
	inner := &btf.Struct{Name: "inner", Size: 8, Members: []btf.Member{member("x", u32, 0), member("y", u32, 4)}}
	un := &btf.Union{Name: "u", Size: 4, Members: []btf.Member{member("as_int", u32, 0), member("as_bytes", &btf.Array{Type: u8, Nelems: 4}, 0)}}
	st := &btf.Struct{Name: "event", Size: 48, Members: []btf.Member{
		member("comm", &btf.Array{Type: typedef("gadget_comm", char), Nelems: 8}, 0),
		member("full", &btf.Array{Type: char, Nelems: 4}, 8), // no NUL
		member("nums", &btf.Array{Type: u16, Nelems: 3}, 12),
		member("in", inner, 20),
		member("", &btf.Struct{Size: 4, Members: []btf.Member{member("anon", u32, 0)}}, 28),
		member("u", un, 32),
		member("neg", &btf.Array{Type: s32, Nelems: 2}, 36),
	}}
	rec := make([]byte, 48)
	copy(rec, "bash\x00zz")
	copy(rec[8:], "abcd")
	binary.NativeEndian.PutUint16(rec[12:], 1)
	binary.NativeEndian.PutUint16(rec[14:], 2)
	binary.NativeEndian.PutUint16(rec[16:], 65535)
	binary.NativeEndian.PutUint32(rec[20:], 10)
	binary.NativeEndian.PutUint32(rec[24:], 20)
	binary.NativeEndian.PutUint32(rec[28:], 30)
	copy(rec[32:], []byte{1, 2, 3, 4})
	binary.NativeEndian.PutUint32(rec[36:], uint32(0xffffffff))
	got := decodeOne(t, st, rec)
	delete(got, "time")
	want := map[string]any{
		"comm": "bash", "full": "abcd",
		"nums": []any{uint8(1), uint8(2), uint16(65535)},
		"in.x": uint8(10), "in.y": uint8(20), "anon": uint8(30),
		"u.as_int":   uint32(binary.NativeEndian.Uint32([]byte{1, 2, 3, 4})),
		"u.as_bytes": []any{uint8(1), uint8(2), uint8(3), uint8(4)},
		"neg":        []any{int8(-1), uint8(0)},
	}
	if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestEnums(t *testing.T) {
	fam := &btf.Enum{Name: "family", Size: 4, Values: []btf.EnumValue{{Name: "AF_INET", Value: 2}, {Name: "AF_INET6", Value: 10}}}
	sgn := &btf.Enum{Name: "s", Size: 4, Signed: true, Values: []btf.EnumValue{{Name: "MINUS", Value: uint64(^uint64(0))}}}
	st := &btf.Struct{Name: "event", Size: 12, Members: []btf.Member{member("family", fam, 0), member("other", fam, 4), member("s", sgn, 8)}}
	rec := append(append(le32(10), le32(99)...), le32(0xffffffff)...)
	got := decodeOne(t, st, rec)
	delete(got, "time")
	want := map[string]any{"family": "AF_INET6", "family_raw": int8(10), "other": "99", "other_raw": int8(99), "s": "MINUS", "s_raw": int8(-1)}
	if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSpecialTypes(t *testing.T) {
	st := &btf.Struct{Name: "event", Size: 64, Members: []btf.Member{
		member("timestamp", typedef("gadget_timestamp", u64), 0),
		member("err", typedef("gadget_errno", u32), 8),
		member("ret", typedef("gadget_ret", s64), 16),
		member("sig", typedef("gadget_signal", u32), 24),
		member("uid", typedef("gadget_uid", u32), 28),
		member("gid", typedef("gadget_gid", u32), 32),
		member("flags", typedef("gadget_file_flags", u32), 36),
		member("mode", typedef("gadget_file_mode", u32), 40),
		member("mntns_id", typedef("gadget_mntns_id", u64), 48),
		member("nr", typedef("gadget_syscall", u64), 56),
	}}
	rec := make([]byte, 64)
	binary.NativeEndian.PutUint64(rec[0:], 5_000_000_000) // 5 s after boot
	binary.NativeEndian.PutUint32(rec[8:], 13)
	binary.NativeEndian.PutUint64(rec[16:], uint64(^uint64(1))) // -2
	binary.NativeEndian.PutUint32(rec[24:], 10)
	binary.NativeEndian.PutUint32(rec[28:], 0)
	binary.NativeEndian.PutUint32(rec[32:], 4242)
	binary.NativeEndian.PutUint32(rec[36:], 0o1101) // O_WRONLY|O_CREAT|O_TRUNC
	binary.NativeEndian.PutUint32(rec[40:], 0o104755)
	binary.NativeEndian.PutUint64(rec[48:], 4026531840)
	binary.NativeEndian.PutUint64(rec[56:], syscallNumber("openat"))
	got := decodeOne(t, st, rec)
	want := map[string]any{
		"time":      "2023-11-14T22:13:25Z", // boot offset 1.7e9 s + 5 s
		"timestamp": "2023-11-14T22:13:25Z", "timestamp_raw": uint32(5_000_000_000 & 0xffffffff),
		"err": "EACCES", "err_raw": int8(13),
		"ret": int8(-2), "ret_error": "ENOENT",
		"sig": "SIGUSR1", "sig_raw": uint8(10),
		"uid": uint8(0), "user": "root", "gid": uint16(4242), "group": "gid:4242",
		"flags": "O_WRONLY|O_CREAT|O_TRUNC", "flags_raw": uint16(0o1101),
		"mode": "-rwsr-xr-x", "mode_raw": uint32(0o104755),
		"mntns_id": uint32(4026531840),
		"nr":       "openat", "nr_raw": uint16(syscallNumber("openat")),
	}
	want["timestamp_raw"] = uint64(5_000_000_000)
	if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

var toInt = testutil.Int

func syscallNumber(name string) uint64 {
	nr, ok := syscalls.Host().Number(name)
	if !ok {
		panic("no syscall " + name)
	}
	return uint64(nr)
}

func ipTypes() (*btf.Struct, *btf.Struct) {
	addr := &btf.Union{Name: "gadget_ip_addr_t", Size: 16, Members: []btf.Member{member("v6", &btf.Array{Type: u8, Nelems: 16}, 0), member("v4", u32, 0)}}
	l3 := &btf.Struct{Name: "gadget_l3endpoint_t", Size: 20, Members: []btf.Member{member("addr_raw", addr, 0), member("version", u8, 16)}}
	l4 := &btf.Struct{Name: "gadget_l4endpoint_t", Size: 24, Members: []btf.Member{member("addr_raw", addr, 0), member("port", u16, 16), member("proto_raw", u16, 18), member("version", u8, 20)}}
	return l3, l4
}

func TestEndpoints(t *testing.T) {
	l3, l4 := ipTypes()
	st := &btf.Struct{Name: "event", Size: 68, Members: []btf.Member{member("saddr", l3, 0), member("daddr", l3, 20), member("dst", l4, 40), member("port", u16, 64)}}
	rec := make([]byte, 68)
	copy(rec[0:], []byte{10, 0, 0, 1})
	rec[16] = 4
	v6 := netip.MustParseAddr("2001:db8::1").As16()
	copy(rec[20:], v6[:])
	rec[36] = 6
	copy(rec[40:], []byte{127, 0, 0, 1})
	binary.NativeEndian.PutUint16(rec[56:], 8080)
	binary.NativeEndian.PutUint16(rec[58:], 6)
	rec[60] = 4
	got := decodeOne(t, st, rec)
	delete(got, "time")
	want := map[string]any{
		"saddr.addr": "10.0.0.1", "saddr.version": uint8(4), "daddr.addr": "2001:db8::1", "daddr.version": uint8(6),
		"dst.addr": "127.0.0.1", "dst.port": uint16(8080), "dst.proto": "TCP", "dst.proto_raw": uint8(6), "dst.version": uint8(4),
		"port": uint8(0),
	}
	if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func strlistStruct() *btf.Struct {
	return &btf.Struct{Name: "event", Size: 36, Members: []btf.Member{
		member("ret", typedef("gadget_ret", s32), 0),
		member("args", &btf.Array{Type: typedef("gadget_strlist", char), Nelems: 32}, 4),
	}}
}

func TestStrListAndShortRecords(t *testing.T) {
	st := strlistStruct()
	for _, tc := range []struct {
		name string
		rec  []byte
		want []any
	}{
		{"clipped keeps empty args", append(le32(0), "ls\x00\x00-l\x00\x00"...), []any{"ls", "", "-l", ""}},
		{"full array strips padding", append(le32(0), append([]byte("a\x00b\x00"), make([]byte, 28)...)...), []any{"a", "b"}},
		{"cut mid-string", append(le32(0), "abc\x00de"...), []any{"abc", "de"}},
		{"no args", le32(0), []any{}},
		{"record shorter than ret", []byte{1, 0}, []any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeOne(t, st, tc.rec)
			if diff := cmp.Diff(norm(tc.want), norm(got["args"])); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
	// Fields wholly past a short record are zero; a long record's tail is
	// ignored.
	short := decodeOne(t, st, nil)
	if toInt(short["ret"]) != 0 || short["ret_error"] != "" {
		t.Errorf("empty record: ret=%v ret_error=%v, want 0 and empty", short["ret"], short["ret_error"])
	}
	long := decodeOne(t, st, append(append(le32(uint32(0xfffffff3)), make([]byte, 32)...), "garbage"...))
	if toInt(long["ret"]) != -13 || long["ret_error"] != "EACCES" {
		t.Errorf("long record: ret=%v ret_error=%v", long["ret"], long["ret_error"])
	}
}

func TestReservedAndDuplicateNames(t *testing.T) {
	st := &btf.Struct{Name: "event", Size: 8, Members: []btf.Member{member("time", u32, 0), member("x", u16, 4), member("x", u16, 6)}}
	got := decodeOne(t, st, []byte{1, 0, 0, 0, 2, 0, 3, 0})
	if toInt(got["event.time"]) != 1 || toInt(got["x"]) != 2 || toInt(got["x#2"]) != 3 {
		t.Errorf("got %v, want event.time=1 x=2 x#2=3", got)
	}
}

func TestBitfields(t *testing.T) {
	st := &btf.Struct{Name: "event", Size: 4, Members: []btf.Member{
		{Name: "lo", Type: u32, Offset: 0, BitfieldSize: 3},
		{Name: "mid", Type: s32, Offset: 3, BitfieldSize: 5},
		{Name: "hi", Type: u32, Offset: 8, BitfieldSize: 24},
	}}
	v := uint32(5) | uint32(0b11110)<<3 | uint32(0xabcdef)<<8 // mid = -2 in 5 bits
	got := decodeOne(t, st, le32(v))
	if toInt(got["lo"]) != 5 || toInt(got["mid"]) != -2 || toInt(got["hi"]) != 0xabcdef {
		t.Errorf("got lo=%#v mid=%#v hi=%#v, want 5 -2 0xabcdef", got["lo"], got["mid"], got["hi"])
	}
}

func TestCompileErrors(t *testing.T) {
	if _, err := Compile(u32, testOpts); err == nil {
		t.Error("compiled an int as an event")
	}
	if _, err := Compile(&btf.Struct{Name: "empty"}, testOpts); err == nil {
		t.Error("compiled a struct with no members")
	}
	if _, err := Compile(typedef("ev_t", &btf.Struct{Name: "e", Size: 4, Members: []btf.Member{member("a", u32, 0)}}), testOpts); err != nil {
		t.Errorf("typedef of a struct: %v", err)
	}
}

func TestFileModeAndFlags(t *testing.T) {
	for mode, want := range map[uint32]string{0o644: "-rw-r--r--", 0o40755: "drwxr-xr-x", 0o1777 | 0o40000: "drwxrwxrwt", 0o2640: "-rw-r-S---", 0o120777: "lrwxrwxrwx"} {
		if got := string(appendFileMode(nil, mode)); got != want {
			t.Errorf("mode %o = %s, want %s", mode, got, want)
		}
	}
	if got := string(appendOpenFlags(nil, 0o2)); got != "O_RDWR" {
		t.Errorf("O_RDWR rendered %s", got)
	}
}

// norm makes decoded numbers comparable: msgpack picks the smallest
// encoding, so the Go type of a decoded number says nothing.
func norm(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range t {
			out[k] = norm(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = norm(e)
		}
		return out
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return toInt(t)
	}
	return v
}

// TestMntNSOfNestedProcess: a struct whose only gadget_mntns_id is nested
// (IG's struct gadget_process proc) is about that namespace, so container
// identity works for it; a top-level one wins over a nested one.
func TestMntNSOfNestedProcess(t *testing.T) {
	mntns := typedef("gadget_mntns_id", u64)
	proc := &btf.Struct{Name: "gadget_process", Size: 16, Members: []btf.Member{member("pid", u32, 0), member("mntns_id", mntns, 8)}}
	nested := &btf.Struct{Name: "event", Size: 24, Members: []btf.Member{member("who", u64, 0), member("proc", proc, 8)}}
	top := &btf.Struct{Name: "event", Size: 32, Members: []btf.Member{member("proc", proc, 0), member("mntns_id", mntns, 16), member("who", u64, 24)}}
	rec := func(vals ...uint64) []byte {
		var b []byte
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
		return b
	}
	for _, c := range []struct {
		typ  *btf.Struct
		rec  []byte
		want uint64
	}{
		{nested, rec(7, 42, 4026532001), 4026532001},
		{top, rec(42, 4026532001, 4026532002, 7), 4026532002},
		{nested, rec(7, 42), 0}, // too short to hold it
	} {
		p, err := Compile(c.typ, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.MntNS(c.rec); got != c.want {
			t.Errorf("MntNS = %d; want %d", got, c.want)
		}
	}
}
