package decode

import (
	"encoding/binary"
	"errors"
	"math/big"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

var (
	u128 = &btf.Int{Name: "unsigned __int128", Size: 16}
	s128 = &btf.Int{Name: "__int128", Size: 16, Encoding: btf.Signed}
)

// decodeHinted compiles typ with hints, encodes rec and decodes it,
// checking the output is one msgpack map whose keys are the schema's (a
// tagged union's alternatives may be missing), in the schema's order.
func decodeHinted(t *testing.T, typ btf.Type, hints map[string]FieldHint, rec []byte) map[string]any {
	t.Helper()
	opts := testOpts
	opts.Fields = hints
	p, err := Compile(typ, opts)
	if err != nil {
		t.Fatal(err)
	}
	for k := range hints {
		if !p.Hinted(k) {
			t.Errorf("hint %q did not apply", k)
		}
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
	schema := p.Schema().Fields
	i := 0
	for _, k := range keys {
		for i < len(schema) && schema[i].Name != k {
			i++
		}
		if i == len(schema) {
			t.Fatalf("key %q is not in the schema, or out of its order (keys %v)", k, keys)
		}
	}
	var m map[string]any
	if err := msgpack.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != len(keys) {
		t.Fatalf("the map header says %d keys, %d were written", len(m), len(keys))
	}
	delete(m, "time")
	for _, k := range []string{"host", "source", "gadget", "seq"} {
		delete(m, k)
	}
	return m
}

func TestWideIntegers(t *testing.T) {
	st := &btf.Struct{Name: "event", Size: 32, Members: []btf.Member{member("big", u128, 0), member("neg", s128, 16)}}
	rec := make([]byte, 32)
	want := new(big.Int).Lsh(big.NewInt(1), 127)
	want.Add(want, big.NewInt(12345))
	b := want.Bytes() // big endian
	for i := range b {
		rec[len(b)-1-i] = b[i]
	}
	for i := 16; i < 32; i++ {
		rec[i] = 0xff
	}
	rec[16] = 0xfe // -2
	got := decodeHinted(t, st, nil, rec)
	if diff := cmp.Diff(map[string]any{"big": want.String(), "neg": "-2"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Zero and the largest value.
	for _, tc := range []struct {
		fill byte
		want string
	}{{0, "0"}, {0xff, "340282366920938463463374607431768211455"}} {
		rec := make([]byte, 16)
		for i := range rec {
			rec[i] = tc.fill
		}
		st := &btf.Struct{Name: "event", Size: 16, Members: []btf.Member{member("v", u128, 0)}}
		if got := decodeHinted(t, st, nil, rec)["v"]; got != tc.want {
			t.Errorf("v = %v, want %s", got, tc.want)
		}
	}
}

// TestWideAddressesByFamily: tcpstates' layout, where an IPv4 address fills
// the first 4 bytes of an unsigned __int128 and the rest is garbage.
func TestWideAddressesByFamily(t *testing.T) {
	st := &btf.Struct{Name: "event", Size: 48, Members: []btf.Member{
		member("saddr", u128, 0), member("daddr", u128, 16), member("total", u128, 32),
	}}
	st.Members = append(st.Members, member("family", u16, 46))
	st.Size = 48
	st.Members[2] = member("total", u64, 32)
	rec := make([]byte, 48)
	for i := range rec[:32] {
		rec[i] = 0xaa
	}
	copy(rec[0:], []byte{127, 0, 0, 1})
	copy(rec[16:], []byte{10, 1, 2, 3})
	binary.NativeEndian.PutUint16(rec[46:], 2)
	got := decodeHinted(t, st, nil, rec)
	if got["saddr"] != "127.0.0.1" || got["daddr"] != "10.1.2.3" {
		t.Errorf("AF_INET: saddr, daddr = %v, %v", got["saddr"], got["daddr"])
	}
	v6 := netip.MustParseAddr("2001:db8::7").As16()
	copy(rec[0:], v6[:])
	binary.NativeEndian.PutUint16(rec[46:], 10)
	if got := decodeHinted(t, st, nil, rec); got["saddr"] != "2001:db8::7" {
		t.Errorf("AF_INET6: saddr = %v", got["saddr"])
	}
	// A family that is no address's: the integer, in full.
	binary.NativeEndian.PutUint16(rec[46:], 1)
	if got := decodeHinted(t, st, nil, rec); got["daddr"] == "" || strings.Contains(got["daddr"].(string), ".") {
		t.Errorf("AF_UNIX: daddr = %v, want the number", got["daddr"])
	}
	// Not an address without a family beside it.
	alone := &btf.Struct{Name: "event", Size: 16, Members: []btf.Member{member("saddr", u128, 0)}}
	if got := decodeHinted(t, alone, nil, rec[:16]); strings.Contains(got["saddr"].(string), ":") {
		t.Errorf("without a family: saddr = %v, want a number", got["saddr"])
	}
}

func TestStringsHint(t *testing.T) {
	st := &btf.Struct{Name: "event", Size: 28, Members: []btf.Member{
		member("argc", s32, 0), member("size", u32, 4), member("args", &btf.Array{Type: char, Nelems: 20}, 8),
	}}
	rec := func(argc int32, size uint32, buf string) []byte {
		r := binary.NativeEndian.AppendUint32(nil, uint32(argc))
		r = binary.NativeEndian.AppendUint32(r, size)
		return append(r, buf...)
	}
	full := "ls\x00-l\x00\x00/tmp\x00\x00\x00\x00\x00\x00\x00\x00\x00" // 20 bytes
	for _, tc := range []struct {
		name string
		hint FieldHint
		rec  []byte
		want []any
	}{
		{"count", FieldHint{As: AsStrings, Count: "argc"}, rec(4, 0, full), []any{"ls", "-l", "", "/tmp"}},
		{"count below the strings present", FieldHint{As: AsStrings, Count: "argc"}, rec(2, 0, full), []any{"ls", "-l"}},
		{"count past the record", FieldHint{As: AsStrings, Count: "argc"}, rec(9, 0, "ls\x00-l"), []any{"ls", "-l"}},
		{"negative count", FieldHint{As: AsStrings, Count: "argc"}, rec(-1, 0, full), []any{}},
		{"size", FieldHint{As: AsStrings, Size: "size"}, rec(0, 6, full), []any{"ls", "-l"}},
		{"count and size", FieldHint{As: AsStrings, Count: "argc", Size: "size"}, rec(4, 7, full), []any{"ls", "-l", ""}},
		{"neither: trailing NULs are padding", FieldHint{As: AsStrings}, rec(0, 0, full), []any{"ls", "-l", "", "/tmp"}},
		{"renamed", FieldHint{As: AsStrings, Count: "argc", Name: "argv"}, rec(1, 0, full), []any{"ls"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeHinted(t, st, map[string]FieldHint{"args": tc.hint}, tc.rec)
			key := "args"
			if tc.hint.Name != "" {
				key = tc.hint.Name
				if _, ok := got["args"]; ok {
					t.Errorf("renamed hint left key args: %v", got)
				}
			}
			if diff := cmp.Diff(norm(tc.want), norm(got[key])); diff != "" {
				t.Errorf("%s (-want +got):\n%s", key, diff)
			}
		})
	}
}

// taggedStruct is procevents' layout: kind, then a union of two structs.
func taggedStruct() *btf.Struct {
	kind := &btf.Enum{Name: "event_kind", Size: 4, Values: []btf.EnumValue{{Name: "EVENT_EXEC", Value: 1}, {Name: "EVENT_EXIT", Value: 2}}}
	execT := &btf.Struct{Size: 20, Members: []btf.Member{member("ppid", u32, 0), member("filename", &btf.Array{Type: char, Nelems: 16}, 4)}}
	exitT := &btf.Struct{Size: 16, Members: []btf.Member{member("code", s32, 0), member("ts_ns", u64, 8)}}
	u := &btf.Union{Size: 20, Members: []btf.Member{member("exec", execT, 0), member("exit", exitT, 0)}}
	return &btf.Struct{Name: "event", Size: 28, Members: []btf.Member{member("kind", kind, 0), member("pid", u32, 4), member("u", u, 8)}}
}

func TestTaggedUnion(t *testing.T) {
	st := taggedStruct()
	hints := map[string]FieldHint{"u": {Tag: "kind", Cases: map[string]string{"EVENT_EXEC": "exec", "2": "exit"}}}
	rec := make([]byte, 28)
	binary.NativeEndian.PutUint32(rec[0:], 1)
	binary.NativeEndian.PutUint32(rec[4:], 42)
	binary.NativeEndian.PutUint32(rec[8:], 7)
	copy(rec[12:], "/bin/sh")
	got := decodeHinted(t, st, hints, rec)
	want := map[string]any{"kind": "EVENT_EXEC", "kind_raw": int64(1), "pid": uint64(42), "u.exec.ppid": uint64(7), "u.exec.filename": "/bin/sh"}
	if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
		t.Errorf("exec (-want +got):\n%s", diff)
	}
	binary.NativeEndian.PutUint32(rec[0:], 2)
	binary.NativeEndian.PutUint32(rec[8:], 3)
	got = decodeHinted(t, st, hints, rec)
	if _, ok := got["u.exec.filename"]; ok || toInt(got["u.exit.code"]) != 3 || got["u.exit.ts_ns"] == nil {
		t.Errorf("exit event = %v, want u.exit.* only", got)
	}
	// A tag no case names: the union is left out.
	binary.NativeEndian.PutUint32(rec[0:], 9)
	got = decodeHinted(t, st, hints, rec)
	for k := range got {
		if strings.HasPrefix(k, "u.") {
			t.Errorf("unknown tag rendered %s: %v", k, got)
		}
	}
	// A short record: the tag reads as 0.
	if got := decodeHinted(t, st, hints, rec[:2]); len(got) != 3 {
		t.Errorf("short record = %v, want kind, kind_raw and pid", got)
	}
}

// TestNestedTaggedUnions: an alternative holding a tagged union of its
// own; the map header counts what is written at every level.
func TestNestedTaggedUnions(t *testing.T) {
	inner := &btf.Union{Size: 8, Members: []btf.Member{member("n", u64, 0), member("s", &btf.Array{Type: char, Nelems: 8}, 0)}}
	alt := &btf.Struct{Size: 12, Members: []btf.Member{member("sub", u32, 0), member("v", inner, 4)}}
	outer := &btf.Union{Size: 12, Members: []btf.Member{member("a", alt, 0), member("b", u32, 0)}}
	st := &btf.Struct{Name: "event", Size: 16, Members: []btf.Member{member("kind", u32, 0), member("u", outer, 4)}}
	hints := map[string]FieldHint{
		"u":     {Tag: "kind", Cases: map[string]string{"1": "a", "2": "b"}},
		"u.a.v": {Tag: "sub", Cases: map[string]string{"0": "n", "1": "s"}},
	}
	rec := make([]byte, 16)
	binary.NativeEndian.PutUint32(rec[0:], 1)
	binary.NativeEndian.PutUint32(rec[4:], 1)
	copy(rec[8:], "hi")
	got := decodeHinted(t, st, hints, rec)
	want := map[string]any{"kind": uint64(1), "u.a.sub": uint64(1), "u.a.v.s": "hi"}
	if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestAddressUnionHint: tcpconnect's anonymous unions of an IPv4 and an
// IPv6 member tagged by af, hinted on either member.
func TestAddressUnionHint(t *testing.T) {
	addrUnion := func(v4, v6 string) *btf.Union {
		return &btf.Union{Size: 16, Members: []btf.Member{member(v4, u32, 0), member(v6, &btf.Array{Type: u8, Nelems: 16}, 0)}}
	}
	st := &btf.Struct{Name: "event", Size: 40, Members: []btf.Member{
		member("", addrUnion("saddr_v4", "saddr_v6"), 0), member("", addrUnion("daddr_v4", "daddr_v6"), 16), member("af", u32, 32), member("dport", u16, 36),
	}}
	hints := map[string]FieldHint{
		"saddr_v6": {As: AsIP, Family: "af", Name: "saddr"},
		"daddr_v4": {As: AsIP, Family: "af", Name: "daddr"},
	}
	rec := make([]byte, 40)
	copy(rec[0:], []byte{127, 0, 0, 1})
	copy(rec[16:], []byte{192, 168, 0, 9})
	binary.NativeEndian.PutUint32(rec[32:], 2)
	got := decodeHinted(t, st, hints, rec)
	want := map[string]any{"saddr": "127.0.0.1", "daddr": "192.168.0.9", "af": uint64(2), "dport": uint64(0)}
	if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
		t.Errorf("AF_INET (-want +got):\n%s", diff)
	}
	v6 := netip.MustParseAddr("fe80::1").As16()
	copy(rec[16:], v6[:])
	binary.NativeEndian.PutUint32(rec[32:], 10)
	if got := decodeHinted(t, st, hints, rec); got["daddr"] != "fe80::1" {
		t.Errorf("AF_INET6 through the IPv4 member's hint: daddr = %v", got["daddr"])
	}
	binary.NativeEndian.PutUint32(rec[32:], 0)
	if got := decodeHinted(t, st, hints, rec); got["daddr"] != "" {
		t.Errorf("no family: daddr = %v, want empty", got["daddr"])
	}
}

func TestHintErrors(t *testing.T) {
	twoArgs := &btf.Struct{Name: "event", Size: 40, Members: []btf.Member{
		member("x", &btf.Struct{Size: 20, Members: []btf.Member{member("args", &btf.Array{Type: char, Nelems: 20}, 0)}}, 0),
		member("y", &btf.Struct{Size: 20, Members: []btf.Member{member("args", &btf.Array{Type: char, Nelems: 20}, 0)}}, 20),
	}}
	for _, tc := range []struct {
		name string
		st   *btf.Struct
		hint FieldHint
		want string
	}{
		{"ambiguous name", twoArgs, FieldHint{As: AsStrings}, `"args" names several members (x.args, y.args)`},
		{"strings on an integer", taggedStruct(), FieldHint{As: AsStrings, Member: "pid"}, "as = \"strings\" needs a char array"},
		{"ip on a 4-byte member, family elsewhere", taggedStruct(), FieldHint{As: AsIP, Member: "u.exec.ppid", Family: "pid"}, ""},
		{"ip of a wrong size", taggedStruct(), FieldHint{As: AsIP, Member: "u.exit.ts_ns"}, "needs 4 (IPv4) or 16"},
		{"count naming no member", twoArgs, FieldHint{As: AsStrings, Member: "x.args", Count: "argc"}, `count "argc": struct event has no such member`},
		{"tag naming a char array", taggedStruct(), FieldHint{Tag: "u.exec.filename", Cases: map[string]string{"1": "exec"}, Member: "u"}, "not an integer"},
		{"case naming no alternative", taggedStruct(), FieldHint{Tag: "kind", Cases: map[string]string{"1": "exce"}, Member: "u"}, `case 1 names "exce", which is not an alternative of the union (alternatives: exec, exit)`},
		{"case naming no enumerator", taggedStruct(), FieldHint{Tag: "kind", Cases: map[string]string{"EXEC": "exec"}, Member: "u"}, "not a number nor a name of enum event_kind (EVENT_EXEC, EVENT_EXIT)"},
		{"unknown kind", taggedStruct(), FieldHint{As: "list", Member: "pid"}, `as = "list"; want one of strings, ip`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOpts
			opts.Fields = map[string]FieldHint{"args": tc.hint}
			_, err := Compile(tc.st, opts)
			if tc.want == "" {
				if err != nil {
					t.Errorf("compile: %v", err)
				}
				return
			}
			var he *HintError
			if !errors.As(err, &he) || he.Key != "args" || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("compile: %v, want a HintError for \"args\" saying %q", err, tc.want)
			}
		})
	}
	// A hint naming no member is not applied, and not an error here: the
	// gadget checks its outputs together.
	opts := testOpts
	opts.Fields = map[string]FieldHint{"argv": {As: AsStrings}}
	p, err := Compile(taggedStruct(), opts)
	if err != nil || p.Hinted("argv") {
		t.Errorf("a hint naming no member: %v, applied %v", err, p != nil && p.Hinted("argv"))
	}
}
