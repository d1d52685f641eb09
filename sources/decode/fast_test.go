package decode

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
)

// general returns a copy of p that always takes the general path.
func general(p *Plan) *Plan {
	g := *p
	g.general = true
	return &g
}

// checkSameAsGeneral encodes rec with p's fast path and with the general
// path and fails unless the bytes are equal. The fast path writes into a
// buffer whose spare capacity holds garbage, and must leave what precedes
// it alone.
func checkSameAsGeneral(t *testing.T, name string, p *Plan, rec []byte, seq uint64, now time.Time) {
	t.Helper()
	want := general(p).Append([]byte("prefix"), rec, seq, now)
	buf := bytes.Repeat([]byte{0xee}, 64)
	got := p.Append(append(buf[:0:0], "prefix"...), rec, seq, now)
	if !bytes.Equal(want, got) {
		t.Fatalf("%s: record %x: fast path differs from the general path\nwant %x\ngot  %x", name, rec, want, got)
	}
	scratch := make([]byte, 0, 8192)
	for i := range scratch[:cap(scratch)] {
		scratch[:cap(scratch)][i] = 0xee
	}
	got = p.Append(append(scratch, "prefix"...), rec, seq, now)
	if !bytes.Equal(want, got) {
		t.Fatalf("%s: record %x: fast path into a dirty buffer differs\nwant %x\ngot  %x", name, rec, want, got)
	}
}

// randomRecord fills a record of n bytes with what makes every encoding
// of a value likely: zero bytes (small integers, NULs ending strings and
// zero timestamps) half of the time, else random bytes.
func randomRecord(r *rand.Rand, n int) []byte {
	rec := make([]byte, n)
	for i := range rec {
		switch r.IntN(4) {
		case 0, 1:
		case 2:
			rec[i] = byte(r.IntN(256))
		default:
			rec[i] = byte('a' + r.IntN(26))
		}
	}
	return rec
}

// fastKinds are member types the fast path has steps for, and some it
// hands to the general encoder, at every size.
func fastKinds() []func(n uint32) btf.Type {
	s8 := &btf.Int{Name: "signed char", Size: 1, Encoding: btf.Signed}
	s16 := &btf.Int{Name: "short", Size: 2, Encoding: btf.Signed}
	return []func(n uint32) btf.Type{
		func(uint32) btf.Type { return u8 },
		func(uint32) btf.Type { return u16 },
		func(uint32) btf.Type { return u32 },
		func(uint32) btf.Type { return u64 },
		func(uint32) btf.Type { return s8 },
		func(uint32) btf.Type { return s16 },
		func(uint32) btf.Type { return s32 },
		func(uint32) btf.Type { return s64 },
		func(uint32) btf.Type { return boolT },
		func(uint32) btf.Type { return char },
		func(uint32) btf.Type { return typedef("gadget_comm", &btf.Array{Type: char, Nelems: 16}) },
		func(n uint32) btf.Type { return &btf.Array{Type: char, Nelems: 1 + n%300} },
		func(uint32) btf.Type { return typedef("gadget_timestamp", u64) },
		func(uint32) btf.Type { return typedef("gadget_pid", u32) },
		func(uint32) btf.Type { return typedef("gadget_errno", s32) },
		func(uint32) btf.Type {
			return &btf.Enum{Name: "e", Size: 4, Values: []btf.EnumValue{{Name: "A", Value: 1}}}
		},
		func(n uint32) btf.Type { return &btf.Array{Type: u16, Nelems: n % 8} },
		func(n uint32) btf.Type { return &btf.Array{Type: typedef("gadget_strlist", char), Nelems: 1 + n%40} },
		func(uint32) btf.Type { return &btf.Float{Name: "double", Size: 8} },
	}
}

// randomStruct lays out up to 12 members of random kinds at random (also
// overlapping, unaligned) offsets.
func randomStruct(r *rand.Rand) *btf.Struct {
	kinds := fastKinds()
	st := &btf.Struct{Name: "event"}
	for i := range 1 + r.IntN(12) {
		typ := kinds[r.IntN(len(kinds))](uint32(r.IntN(1 << 12)))
		off := uint32(r.IntN(96))
		st.Members = append(st.Members, member(fmt.Sprintf("m%d_%s", i, longName(r)), typ, off))
		sz, _ := btf.Sizeof(typ)
		st.Size = max(st.Size, off+uint32(sz))
	}
	return st
}

// longName makes some keys longer than a step stores at once.
func longName(r *rand.Rand) string {
	if r.IntN(4) == 0 {
		return "a_member_name_longer_than_thirty_two_bytes"
	}
	return "x"
}

// TestFastPathSameAsGeneral holds Append's fast path (planned steps) to
// the general path's bytes: random layouts of every kind the steps handle
// and some they hand over, records as long as the struct or longer (and
// shorter: the general path), every integer encoding, strings of every
// length, zero timestamps.
func TestFastPathSameAsGeneral(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 12, 3, 17, 0, 0, 123456789, time.UTC)
	fast := 0
	for i := range 400 {
		st := randomStruct(r)
		p, err := Compile(st, testOpts)
		if err != nil {
			continue
		}
		if p.steps != nil {
			fast++
		}
		for j := range 50 {
			n := int(st.Size) + r.IntN(24) - 4
			checkSameAsGeneral(t, fmt.Sprintf("layout %d (%v)", i, st.Members), p, randomRecord(r, max(n, 0)), uint64(r.Int64N(1<<(j%64+1))), now)
		}
	}
	if fast < 300 {
		t.Fatalf("only %d of 400 layouts have a fast path", fast)
	}
}

// TestFastPathShapes runs the differential check on the shapes the
// benchmarks and other tests use, and on integer boundaries.
func TestFastPathShapes(t *testing.T) {
	now := time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)
	for _, size := range []int{64, 256} {
		st, rec := synthEvent(t, size)
		p, err := Compile(st, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		if p.steps == nil {
			t.Fatal("the synthetic event has no fast path")
		}
		checkSameAsGeneral(t, "synth", p, rec, 1, now)
		clear(rec[0:8]) // no timestamp: the envelope's time is now
		checkSameAsGeneral(t, "synth without timestamp", p, rec, 2, now)
	}
	st, rec := execShaped()
	p, err := Compile(st, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	checkSameAsGeneral(t, "exec", p, append(rec, make([]byte, 1848-len(rec))...), 3, now)

	ints := &btf.Struct{Name: "event", Size: 32, Members: []btf.Member{
		member("u", u64, 0), member("s", s64, 8), member("u32", u32, 16), member("s32", s32, 20), member("u16", u16, 24), member("s8", &btf.Int{Name: "signed char", Size: 1, Encoding: btf.Signed}, 26),
	}}
	p, err = Compile(ints, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint64{0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000, 1<<63 - 1, 1 << 63, ^uint64(0),
		^uint64(0) - 30, ^uint64(0) - 31, ^uint64(0) - 32, ^uint64(0) - 127, ^uint64(0) - 128, ^uint64(0) - 0x7fff, ^uint64(0) - 0x8000, ^uint64(0) - 0x7fffffff, ^uint64(0) - 0x80000000} {
		rec := make([]byte, 32)
		for k := 0; k < 32; k += 8 {
			for b := range 8 {
				rec[k+b] = byte(v >> (8 * b))
			}
		}
		checkSameAsGeneral(t, fmt.Sprintf("integers %#x", v), p, rec, v, now)
	}
}

// TestFastPathKeepsAnArenaWithRoom: an arena with Room() bytes to spare
// takes an event whose generic fields write no more than their share
// without being regrown. Regrowing after a generic step for the whole
// plan's room (not the later steps') copied the arena into a new heap
// array for most events near an arena's end: the built-in config's heap
// went from 30 to 200 MB.
func TestFastPathKeepsAnArenaWithRoom(t *testing.T) {
	enum := &btf.Enum{Name: "e", Size: 4, Values: []btf.EnumValue{{Name: "A", Value: 1}}}
	st := &btf.Struct{Name: "event", Size: 40, Members: []btf.Member{
		member("a", u64, 0), member("kind", enum, 8), member("b", u32, 12),
		member("comm", typedef("gadget_comm", &btf.Array{Type: char, Nelems: 16}), 16), member("c", u64, 32),
	}}
	p, err := Compile(st, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if p.steps == nil {
		t.Fatal("the event has no fast path")
	}
	rec := make([]byte, 40)
	rec[0], rec[8], rec[12], rec[32] = 7, 1, 9, 5
	copy(rec[16:], "bash")
	now := time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)
	want := general(p).Append(nil, rec, 1, now)
	for _, used := range []int{0, 1000, 60000} {
		arena := make([]byte, used, used+p.Room())
		got := p.Append(arena, rec, 1, now)
		if &got[:1][0] != &arena[:1][0] {
			t.Errorf("%d bytes used, %d to spare (Room): Append moved the arena to a new array of %d bytes", used, p.Room(), cap(got))
		}
		if !bytes.Equal(got[used:], want) {
			t.Fatalf("%d bytes used: the event differs from the general path's\nwant %x\ngot  %x", used, want, got[used:])
		}
	}
}
