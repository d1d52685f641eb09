package decode

import (
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// fuzzStruct builds a struct layout from fuzz bytes: each 4-byte group picks
// a member kind, an offset (possibly past the struct), and a size.
func fuzzStruct(layout []byte) *btf.Struct {
	l3, l4 := ipTypes()
	kinds := []func(n uint32) btf.Type{
		func(uint32) btf.Type { return u8 },
		func(uint32) btf.Type { return u16 },
		func(uint32) btf.Type { return s32 },
		func(uint32) btf.Type { return u64 },
		func(uint32) btf.Type { return boolT },
		func(n uint32) btf.Type { return &btf.Array{Type: char, Nelems: n} },
		func(n uint32) btf.Type { return &btf.Array{Type: u16, Nelems: n % 64} },
		func(n uint32) btf.Type { return &btf.Array{Type: typedef("gadget_strlist", char), Nelems: n} },
		func(uint32) btf.Type { return typedef("gadget_timestamp", u64) },
		func(uint32) btf.Type { return typedef("gadget_ret", s64) },
		func(uint32) btf.Type { return typedef("gadget_errno", u32) },
		func(uint32) btf.Type { return typedef("gadget_signal", u32) },
		func(uint32) btf.Type { return typedef("gadget_uid", u32) },
		func(uint32) btf.Type { return typedef("gadget_file_flags", u32) },
		func(uint32) btf.Type { return typedef("gadget_file_mode", u32) },
		func(uint32) btf.Type { return typedef("gadget_syscall", u64) },
		func(uint32) btf.Type { return l3 },
		func(uint32) btf.Type { return l4 },
		func(uint32) btf.Type {
			return &btf.Enum{Name: "e", Size: 4, Values: []btf.EnumValue{{Name: "A", Value: 1}}}
		},
		func(n uint32) btf.Type {
			return &btf.Union{Size: 8, Members: []btf.Member{member("a", u64, 0), member("b", &btf.Array{Type: u8, Nelems: 8}, 0)}}
		},
		func(n uint32) btf.Type { return &btf.Pointer{Target: u32} },
		func(n uint32) btf.Type { return &btf.Array{Type: l3, Nelems: n % 4} },
		func(uint32) btf.Type { return &btf.Int{Name: "unsigned __int128", Size: 16} },
		func(uint32) btf.Type { return u16 }, // a family beside an address named like one
	}
	st := &btf.Struct{Name: "event"}
	for i := 0; i+4 <= len(layout) && i < 4*32; i += 4 {
		k := int(layout[i]) % len(kinds)
		off := uint32(layout[i+1]) * 3
		n := uint32(layout[i+2])<<4 | uint32(layout[i+3])>>4
		m := btf.Member{Name: string(rune('a' + i/4%26)), Type: kinds[k](n), Offset: btf.Bits(off * 8)}
		switch k {
		case len(kinds) - 2:
			m.Name += "addr"
		case len(kinds) - 1:
			m.Name = "family"
		}
		if layout[i+3]&0xf == 1 {
			m.BitfieldSize = btf.Bits(layout[i+2] % 70)
			m.Type = u32
		}
		st.Members = append(st.Members, m)
		if end := off + 16; end > st.Size {
			st.Size = end
		}
	}
	return st
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 5, 2, 1, 0, 7, 10, 2, 0}, []byte("hello\x00world\x00"))
	f.Add([]byte{16, 0, 0, 0, 17, 8, 0, 0, 1, 20, 0, 1}, make([]byte, 64))
	f.Add([]byte{8, 0, 0, 0, 9, 3, 0, 0, 18, 6, 0, 0, 21, 9, 3, 0}, []byte{0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, layout, record []byte) {
		p, err := Compile(fuzzStruct(layout), testOpts)
		if err != nil {
			return
		}
		out := p.Append(nil, record, 1, time.Unix(0, 0))
		n, err := codec.Skip(out)
		if err != nil || n != len(out) {
			t.Fatalf("Append produced %d bytes that are not one msgpack value (skip %d, %v)", len(out), n, err)
		}
		if _, err := codec.AppendJSON(nil, out); err != nil {
			t.Fatalf("Append output does not transcode to JSON: %v", err)
		}
		checkSameAsGeneral(t, "fuzz", p, record, 1, time.Unix(0, 0))
	})
}

// FuzzDecodeHinted encodes any record through a plan built with every kind
// of hint (a tagged union with a nested tagged union, strings counted by a
// member, addresses by family, wide integers): the output is always one
// msgpack map whose header counts its keys.
func FuzzDecodeHinted(f *testing.F) {
	inner := &btf.Union{Size: 8, Members: []btf.Member{member("n", u64, 0), member("s", &btf.Array{Type: char, Nelems: 8}, 0)}}
	alt := &btf.Struct{Size: 12, Members: []btf.Member{member("sub", u32, 0), member("v", inner, 4)}}
	outer := &btf.Union{Size: 24, Members: []btf.Member{member("a", alt, 0), member("b", &btf.Array{Type: char, Nelems: 24}, 0)}}
	addr := &btf.Union{Size: 16, Members: []btf.Member{member("v4", u32, 0), member("v6", &btf.Array{Type: u8, Nelems: 16}, 0)}}
	st := &btf.Struct{Name: "event", Size: 96, Members: []btf.Member{
		member("kind", s32, 0), member("argc", s32, 4), member("u", outer, 8),
		member("", addr, 32), member("wide", &btf.Int{Name: "__int128", Size: 16, Encoding: btf.Signed}, 48),
		member("family", u16, 64), member("args", &btf.Array{Type: char, Nelems: 30}, 66),
	}}
	opts := testOpts
	opts.Fields = map[string]FieldHint{
		"u":     {Tag: "kind", Cases: map[string]string{"1": "a", "-2": "b"}},
		"u.a.v": {Tag: "sub", Cases: map[string]string{"0": "n", "1": "s"}},
		"v6":    {As: AsIP, Family: "family", Name: "addr"},
		"args":  {As: AsStrings, Count: "argc"},
	}
	p, err := Compile(st, opts)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{1, 0, 0, 0, 3, 0, 0, 0, 1})
	f.Add(make([]byte, 96))
	f.Add([]byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, record []byte) {
		out := p.Append(nil, record, 1, time.Unix(0, 0))
		n, err := codec.Skip(out)
		if err != nil || n != len(out) {
			t.Fatalf("Append produced %d bytes that are not one msgpack value (skip %d, %v)", len(out), n, err)
		}
		if _, err := codec.AppendJSON(nil, out); err != nil {
			t.Fatalf("Append output does not transcode to JSON: %v", err)
		}
	})
}
