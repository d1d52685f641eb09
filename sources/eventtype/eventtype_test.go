package eventtype

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/sluice-dev/sluice/gadgets"
)

func object(t *testing.T, name string) []byte {
	t.Helper()
	b, err := gadgets.TestObject("libbpf/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func load(t *testing.T, name string) *Catalog {
	t.Helper()
	c, err := Load("the object", object(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDWARFMatchesBTF: for every struct an object has in both its BTF and
// its DWARF, the struct converted from DWARF has the layout clang's BTF
// gives it: member names, offsets, bitfields, types all the way down.
func TestDWARFMatchesBTF(t *testing.T) {
	compared := map[string]bool{}
	for _, name := range []string{"layouts", "sigsnoop", "execsnoop", "runqslower", "sysregs", "tcpstates", "procevents"} {
		c := load(t, name)
		if !c.HasBTF() || !c.HasDWARF() {
			t.Fatalf("%s: BTF %v, DWARF %v; want both", name, c.HasBTF(), c.HasDWARF())
		}
		for _, s := range c.dwarf.structs {
			want := btfStruct(c.btf, s.name)
			if want == nil {
				continue
			}
			got, err := c.dwarf.lookup(s.name)
			if err != nil {
				t.Fatalf("%s: struct %s: %v", name, s.name, err)
			}
			if err := sameLayout(want, got, s.name, map[[2]btf.Type]bool{}); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			compared[s.name] = true
		}
	}
	for _, want := range []string{"layouts", "anon_t", "node", "event", "task_struct", "pt_regs"} {
		if !compared[want] {
			t.Errorf("struct %s was not compared (compared: %v)", want, compared)
		}
	}
}

// sameLayout compares a type from BTF with one converted from DWARF.
func sameLayout(want, got btf.Type, path string, seen map[[2]btf.Type]bool) error {
	if seen[[2]btf.Type{want, got}] {
		return nil
	}
	seen[[2]btf.Type{want, got}] = true
	if reflect.TypeOf(want) != reflect.TypeOf(got) {
		return fmt.Errorf("%s: BTF has %v, DWARF gives %v", path, want, got)
	}
	mismatch := func(what string, w, g any) error {
		return fmt.Errorf("%s: %s: BTF %v, DWARF %v", path, what, w, g)
	}
	switch w := want.(type) {
	case *btf.Int:
		g := got.(*btf.Int)
		if w.Name != g.Name || w.Size != g.Size || w.Encoding != g.Encoding {
			return mismatch("int", w, g)
		}
	case *btf.Float:
		if g := got.(*btf.Float); w.Name != g.Name || w.Size != g.Size {
			return mismatch("float", w, g)
		}
	case *btf.Enum:
		g := got.(*btf.Enum)
		if w.Name != g.Name || w.Size != g.Size || w.Signed != g.Signed || !reflect.DeepEqual(w.Values, g.Values) {
			return mismatch("enum", fmt.Sprintf("%+v", *w), fmt.Sprintf("%+v", *g))
		}
	case *btf.Struct:
		g := got.(*btf.Struct)
		return sameMembers(w.Name, g.Name, w.Size, g.Size, w.Members, g.Members, path, seen)
	case *btf.Union:
		g := got.(*btf.Union)
		return sameMembers(w.Name, g.Name, w.Size, g.Size, w.Members, g.Members, path, seen)
	case *btf.Array:
		g := got.(*btf.Array)
		if w.Nelems != g.Nelems {
			return mismatch("array length", w.Nelems, g.Nelems)
		}
		return sameLayout(w.Type, g.Type, path+"[]", seen)
	case *btf.Typedef:
		g := got.(*btf.Typedef)
		if w.Name != g.Name {
			return mismatch("typedef", w.Name, g.Name)
		}
		return sameLayout(w.Type, g.Type, path, seen)
	case *btf.Pointer:
		return sameLayout(w.Target, got.(*btf.Pointer).Target, path+"*", seen)
	case *btf.Const:
		return sameLayout(w.Type, got.(*btf.Const).Type, path, seen)
	case *btf.Volatile:
		return sameLayout(w.Type, got.(*btf.Volatile).Type, path, seen)
	case *btf.Fwd:
		if g := got.(*btf.Fwd); w.Name != g.Name || w.Kind != g.Kind {
			return mismatch("forward declaration", w, g)
		}
	}
	return nil
}

func sameMembers(wn, gn string, ws, gs uint32, wm, gm []btf.Member, path string, seen map[[2]btf.Type]bool) error {
	if wn != gn || ws != gs || len(wm) != len(gm) {
		return fmt.Errorf("%s: BTF %s (%d bytes, %d members), DWARF %s (%d bytes, %d members)", path, wn, ws, len(wm), gn, gs, len(gm))
	}
	for i := range wm {
		w, g := wm[i], gm[i]
		p := path + "." + w.Name
		if w.Name != g.Name || w.Offset != g.Offset || w.BitfieldSize != g.BitfieldSize {
			return fmt.Errorf("%s: BTF member %s at bit %d (%d bits), DWARF %s at bit %d (%d bits)", p, w.Name, w.Offset, w.BitfieldSize, g.Name, g.Offset, g.BitfieldSize)
		}
		if err := sameLayout(w.Type, g.Type, p, seen); err != nil {
			return err
		}
	}
	return nil
}

func TestCatalogLookups(t *testing.T) {
	c := load(t, "syncsnoop")
	st, origin, err := c.Struct("struct event")
	if err != nil || st == nil || origin != FromDWARF || st.Size != 32 {
		t.Fatalf(`Struct("struct event") = %v, %v, %v; want the 32-byte struct from DWARF`, st, origin, err)
	}
	if st, _, err := c.Struct("no_such"); st != nil || err != nil {
		t.Errorf("Struct(no_such) = %v, %v; want nothing and no error", st, err)
	}
	lay := load(t, "layouts")
	st, origin, _ = lay.Struct("anon_t")
	if st == nil || st.Name != "anon_t" || origin != FromBTF {
		t.Errorf("Struct(anon_t) = %v from %v; want the typedef's anonymous struct, named anon_t, from BTF", st, origin)
	}
	if st, _ := lay.dwarf.lookup("anon_t"); st == nil || st.Name != "anon_t" {
		t.Errorf("DWARF lookup of anon_t = %v", st)
	}
	types := load(t, "syncsnoop.types")
	if types.HasBTF() || !types.HasDWARF() {
		t.Errorf("syncsnoop.types: BTF %v, DWARF %v; want DWARF only", types.HasBTF(), types.HasDWARF())
	}
	if _, err := Load("junk", []byte("not an object")); err == nil || !strings.Contains(err.Error(), "neither an ELF object nor raw BTF") {
		t.Errorf("Load(junk): %v", err)
	}
}

// TestLoadRawBTF: a raw BTF blob (what pahole --btf_encode_detached and
// /sys/kernel/btf write) is a types file too.
func TestLoadRawBTF(t *testing.T) {
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	ev := &btf.Struct{Name: "event", Size: 8, Members: []btf.Member{{Name: "a", Type: u32}, {Name: "b", Type: u32, Offset: 32}}}
	b, err := btf.NewBuilder([]btf.Type{ev}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load("types.btf", raw)
	if err != nil {
		t.Fatal(err)
	}
	// The stripped object's 8-byte struct trace_entry is a kernel type
	// (as CO-RE relocations, or the kernel's BTF, would tell).
	r, err := Find(Query{Map: "rb", Object: load(t, "syncsnoop_stripped"), File: c, Sizes: []uint32{8}, CORE: map[string]bool{"trace_entry": true}})
	if err != nil || r.Type.Name != "event" || r.How != ByRecordSize || r.From != "types.btf (BTF)" {
		t.Errorf("Find with a raw BTF file = %+v, %v", r, err)
	}
}

func TestFind(t *testing.T) {
	sync := load(t, "syncsnoop")
	stripped := load(t, "syncsnoop_stripped")
	types := load(t, "syncsnoop.types")
	regs := load(t, "sysregs_stripped")
	kernelEvent := kernelSpec(t, "event", 32)
	for _, tc := range []struct {
		name     string
		q        Query
		want     string // "struct (how, from)" or an error's text
		notFound bool
	}{
		{"hint from DWARF", Query{Hint: "event", Object: sync}, "event by hint from the object's DWARF", false},
		{"hint prefers the object", Query{Hint: "event", Object: sync, File: types}, "event by hint from the object's DWARF", false},
		{"hint from the file", Query{Hint: "event", Object: stripped, File: types}, "event by hint from t.o (DWARF)", false},
		{"hint nowhere, no DWARF", Query{Hint: "event", Object: stripped}, "struct event is not in the object's BTF: clang drops types used only by locals", true},
		{"hint nowhere, with DWARF", Query{Hint: "evnt", Object: sync}, "struct evnt is not in the object's BTF nor in its DWARF (structs it has: event)", true},
		{"size from DWARF", Query{Map: "events", Object: sync, Sizes: []uint32{32}}, "event by record size from the object's DWARF", false},
		{"size from the file", Query{Map: "events", Object: stripped, File: types, Sizes: []uint32{32}}, "event by record size from t.o (DWARF)", false},
		{"no size", Query{Map: "events", Object: sync}, "its programs pass it no constant record size (variable-length records?); structs the programs use: event", false},
		{"no struct of the size", Query{Map: "events", Object: sync, Sizes: []uint32{33}}, "no struct of that size is in the object's BTF and DWARF", false},
		{"kernel type by name and size", Query{Map: "events", Object: sync, Sizes: []uint32{32}, Kernel: kernelEvent}, "struct event (the kernel's BTF has it)", false},
		{"kernel type by name, other size", Query{Map: "events", Object: sync, Sizes: []uint32{32}, Kernel: kernelSpec(t, "event", 48)}, "event by record size from the object's DWARF", false},
		{"kernel type through CO-RE", Query{Map: "events", Object: regs, Sizes: []uint32{168}, CORE: map[string]bool{"pt_regs": true}}, "struct pt_regs (read through CO-RE relocations)", false},
		{"kernel type from vmlinux.h", Query{Map: "events", Object: load(t, "runqslower"), Sizes: []uint32{32}}, "struct task_struct (declared in testdata/libbpf/vmlinux.h)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.q.File == types {
				types.Name = "t.o"
			}
			r, err := Find(tc.q)
			if err != nil {
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q, want it to say %q", err, tc.want)
				}
				if errors.Is(err, ErrNotFound) != tc.notFound {
					t.Errorf("errors.Is(err, ErrNotFound) = %v, want %v", !tc.notFound, tc.notFound)
				}
				if strings.Contains(err.Error(), "__type(value") {
					t.Errorf("error %q suggests __type(value, ...) on an output map", err)
				}
				return
			}
			if got := fmt.Sprintf("%s by %s from %s", r.Type.Name, r.How, r.From); got != tc.want {
				t.Errorf("found %s, want %s", got, tc.want)
			}
		})
	}
}

// TestFindPrefersUsedStructs: of several structs of the record size, the
// one the code holds in a variable is the event; a tie is an error.
func TestFindPrefersUsedStructs(t *testing.T) {
	lay := load(t, "layouts")
	// node (16 bytes) is used by a global; so is anon_t (6 bytes).
	if _, err := Find(Query{Map: "m", Object: lay, Sizes: []uint32{16, 6}}); err == nil || !strings.Contains(err.Error(), "several structs have the record size 6 bytes or 16 bytes (anon_t, node)") {
		t.Errorf("two used structs: %v", err)
	}
}

func kernelSpec(t *testing.T, name string, size uint32) *btf.Spec {
	t.Helper()
	st := &btf.Struct{Name: name, Size: size}
	b, err := btf.NewBuilder([]btf.Type{st}, nil)
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
