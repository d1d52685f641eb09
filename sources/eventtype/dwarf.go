package eventtype

import (
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"
)

// BPF relocation types found in an object's .rel.debug_* sections (LLVM's
// ELFRelocs/BPF.def); Go's debug/elf knows none of them, so it cannot hand
// out the DWARF of a relocatable BPF object itself.
const (
	rBPFNone  = 0
	rBPFAbs64 = 2
	rBPFAbs32 = 3
)

// dwarfIndex is the DWARF of an object, indexed by type name.
type dwarfIndex struct {
	data *dwarf.Data
	// defs maps a struct, union, enum or typedef name to the offsets of its
	// definitions (not declarations), in the order they appear.
	defs map[string][]dwarf.Offset
	// structs lists the named struct definitions (and typedefs of
	// anonymous structs), each once, in the order they appear.
	structs []dwarfStruct
	// used names the structs the code itself uses: the types of
	// variables and parameters, directly or through pointers, typedefs,
	// qualifiers and arrays.
	used map[string]bool
	// mu guards conv, whose memo lookups fill.
	mu   sync.Mutex
	conv *converter
}

type dwarfStruct struct {
	name string
	off  dwarf.Offset // of the struct (or the typedef naming it)
	file string       // the file declaring it, "" when unknown
	size int64
}

// readDWARF returns the DWARF of an ELF object, relocated, or nil when the
// object has none (it was stripped, or built without -g).
func readDWARF(f *elf.File) (*dwarfIndex, error) {
	info := f.Section(".debug_info")
	if info == nil || info.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	sections := map[string][]byte{}
	for _, name := range []string{".debug_abbrev", ".debug_info", ".debug_str", ".debug_line", ".debug_ranges", ".debug_str_offsets", ".debug_addr", ".debug_line_str", ".debug_rnglists"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			continue
		}
		b, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if f.Type == elf.ET_REL {
			if err := relocate(f, name, b); err != nil {
				return nil, err
			}
		}
		sections[name] = b
	}
	d, err := dwarf.New(sections[".debug_abbrev"], nil, nil, sections[".debug_info"], sections[".debug_line"], nil, sections[".debug_ranges"], sections[".debug_str"])
	if err != nil {
		return nil, fmt.Errorf("read DWARF: %w", err)
	}
	for _, name := range []string{".debug_str_offsets", ".debug_addr", ".debug_line_str", ".debug_rnglists"} {
		if b, ok := sections[name]; ok {
			if err := d.AddSection(name, b); err != nil {
				return nil, fmt.Errorf("read DWARF section %s: %w", name, err)
			}
		}
	}
	idx := &dwarfIndex{data: d, defs: map[string][]dwarf.Offset{}, used: map[string]bool{}}
	idx.conv = &converter{data: d, memo: map[dwarf.Type]btf.Type{}}
	if err := idx.scan(); err != nil {
		return nil, fmt.Errorf("read DWARF: %w", err)
	}
	return idx, nil
}

// relocate applies the object's relocations of section name to b, which
// holds the section's bytes. A BPF object's debug sections refer to each
// other through section symbols (value 0, the addend in place), but an
// object linked from several may not; applying them is what makes every
// DW_FORM_strp, string offset and line table reference right.
func relocate(f *elf.File, name string, b []byte) error {
	rel := f.Section(".rel" + name)
	if rel == nil {
		if f.Section(".rela"+name) != nil {
			return fmt.Errorf("relocate %s: RELA relocations in a BPF object are not supported", name)
		}
		return nil
	}
	if f.Class != elf.ELFCLASS64 {
		return fmt.Errorf("relocate %s: a BPF object must be ELF64", name)
	}
	raw, err := rel.Data()
	if err != nil {
		return fmt.Errorf("read .rel%s: %w", name, err)
	}
	syms, err := f.Symbols()
	if err != nil {
		return fmt.Errorf("relocate %s: read symbols: %w", name, err)
	}
	bo := f.ByteOrder
	const relSize = 16 // Elf64_Rel
	if len(raw)%relSize != 0 {
		return fmt.Errorf("relocate %s: .rel%s is %d bytes, not a whole number of relocations", name, name, len(raw))
	}
	for i := 0; i < len(raw); i += relSize {
		off := bo.Uint64(raw[i:])
		info := bo.Uint64(raw[i+8:])
		symIdx, typ := elf.R_SYM64(info), elf.R_TYPE64(info)
		var symVal uint64
		if symIdx > 0 {
			// f.Symbols omits the null symbol at index 0.
			if int(symIdx) > len(syms) {
				return fmt.Errorf("relocate %s: relocation at %#x names symbol %d of %d", name, off, symIdx, len(syms))
			}
			symVal = syms[symIdx-1].Value
		}
		switch typ {
		case rBPFNone:
		case rBPFAbs32:
			if off+4 > uint64(len(b)) {
				return fmt.Errorf("relocate %s: relocation at %#x past the section's end", name, off)
			}
			bo.PutUint32(b[off:], bo.Uint32(b[off:])+uint32(symVal))
		case rBPFAbs64:
			if off+8 > uint64(len(b)) {
				return fmt.Errorf("relocate %s: relocation at %#x past the section's end", name, off)
			}
			bo.PutUint64(b[off:], bo.Uint64(b[off:])+symVal)
		default:
			return fmt.Errorf("relocate %s: relocation type %d at %#x is not one DWARF uses", name, typ, off)
		}
	}
	return nil
}

// scan indexes the type definitions and marks the types variables and
// parameters use.
func (x *dwarfIndex) scan() error {
	r := x.data.Reader()
	var files []*dwarf.LineFile
	seenStruct := map[string]bool{}
	for {
		e, err := r.Next()
		if err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		switch e.Tag {
		case dwarf.TagCompileUnit:
			files = nil
			if lr, err := x.data.LineReader(e); err == nil && lr != nil {
				files = lr.Files()
			}
		case dwarf.TagStructType, dwarf.TagUnionType, dwarf.TagEnumerationType, dwarf.TagTypedef:
			name, _ := e.Val(dwarf.AttrName).(string)
			if decl, _ := e.Val(dwarf.AttrDeclaration).(bool); decl || name == "" {
				continue
			}
			x.defs[name] = append(x.defs[name], e.Offset)
			if e.Tag == dwarf.TagUnionType || e.Tag == dwarf.TagEnumerationType || seenStruct[name] {
				continue
			}
			file := ""
			if i, ok := e.Val(dwarf.AttrDeclFile).(int64); ok && i >= 0 && int(i) < len(files) && files[i] != nil {
				file = files[i].Name
			}
			if e.Tag == dwarf.TagTypedef {
				// A typedef of an anonymous struct names that struct.
				t, err := x.data.Type(e.Offset)
				if err != nil {
					continue
				}
				st, ok := t.(*dwarf.TypedefType).Type.(*dwarf.StructType)
				if !ok || st.StructName != "" || st.Kind != "struct" || st.Incomplete {
					continue
				}
				seenStruct[name] = true
				x.structs = append(x.structs, dwarfStruct{name: name, off: e.Offset, file: file, size: st.ByteSize})
				continue
			}
			size, _ := e.Val(dwarf.AttrByteSize).(int64)
			seenStruct[name] = true
			x.structs = append(x.structs, dwarfStruct{name: name, off: e.Offset, file: file, size: size})
		case dwarf.TagVariable, dwarf.TagFormalParameter, dwarf.TagMember:
			if e.Tag == dwarf.TagMember {
				continue
			}
			if off, ok := e.Val(dwarf.AttrType).(dwarf.Offset); ok {
				x.markUsed(off)
			}
		}
	}
}

// markUsed marks the struct a variable's type names, looking through
// pointers, typedefs, qualifiers and arrays.
func (x *dwarfIndex) markUsed(off dwarf.Offset) {
	t, err := x.data.Type(off)
	if err != nil {
		return
	}
	for i := 0; i < 16 && t != nil; i++ {
		switch tt := t.(type) {
		case *dwarf.PtrType:
			t = tt.Type
		case *dwarf.QualType:
			t = tt.Type
		case *dwarf.ArrayType:
			t = tt.Type
		case *dwarf.TypedefType:
			if st, ok := tt.Type.(*dwarf.StructType); ok && st.StructName == "" {
				x.usedNames(tt.Name)
			}
			t = tt.Type
		case *dwarf.StructType:
			x.usedNames(tt.StructName)
			return
		default:
			return
		}
	}
}

func (x *dwarfIndex) usedNames(name string) {
	if name != "" {
		x.used[name] = true
	}
}

// lookup returns the struct called name (or the anonymous struct a typedef
// of that name stands for) converted to BTF, nil when DWARF has none.
func (x *dwarfIndex) lookup(name string) (*btf.Struct, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, off := range x.defs[name] {
		t, err := x.data.Type(off)
		if err != nil {
			return nil, fmt.Errorf("read DWARF type %s: %w", name, err)
		}
		var st *dwarf.StructType
		switch tt := t.(type) {
		case *dwarf.StructType:
			st = tt
		case *dwarf.TypedefType:
			st, _ = tt.Type.(*dwarf.StructType)
		}
		if st == nil || st.Kind != "struct" || st.Incomplete {
			continue
		}
		bt, err := x.conv.structType(st)
		if err != nil {
			return nil, fmt.Errorf("convert DWARF type %s: %w", name, err)
		}
		if bt.Name == "" {
			named := *bt
			named.Name = name
			bt = &named
		}
		return bt, nil
	}
	return nil, nil
}

// isKernelHeader reports whether a type declared in file comes from a
// kernel type dump: bpftool's vmlinux.h, or a copy of it.
func isKernelHeader(file string) bool {
	base := path.Base(file)
	return base == "vmlinux.h" || strings.HasPrefix(base, "vmlinux_")
}

// converter turns DWARF types into the BTF types decode plans are built
// from. DWARF describes the same C types BTF does (clang derives its BTF
// from them), so the mapping is one to one: see RATIONALE.md.
type converter struct {
	data  *dwarf.Data
	memo  map[dwarf.Type]btf.Type
	depth int
}

var errUnsupported = errors.New("unsupported DWARF type")

// maxConvertDepth bounds nesting (arrays of typedefs of structs...); the
// memo breaks cycles through pointers.
const maxConvertDepth = 64

func (c *converter) convert(t dwarf.Type) (btf.Type, error) {
	if t == nil {
		return &btf.Void{}, nil
	}
	if bt, ok := c.memo[t]; ok {
		return bt, nil
	}
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > maxConvertDepth {
		return nil, fmt.Errorf("type nesting deeper than %d", maxConvertDepth)
	}
	var out btf.Type
	switch tt := t.(type) {
	case *dwarf.StructType:
		if tt.Incomplete {
			kind := btf.FwdStruct
			if tt.Kind == "union" {
				kind = btf.FwdUnion
			}
			out = &btf.Fwd{Name: tt.StructName, Kind: kind}
			break
		}
		if tt.Kind == "union" {
			u := &btf.Union{Name: tt.StructName, Size: uint32(tt.ByteSize)}
			c.memo[t] = u
			ms, err := c.members(tt)
			if err != nil {
				return nil, err
			}
			u.Members = ms
			return u, nil
		}
		return c.structType(tt)
	case *dwarf.BoolType:
		out = &btf.Int{Name: tt.Name, Size: uint32(tt.ByteSize), Encoding: btf.Bool}
	case *dwarf.CharType:
		// clang's BTF gives char, signed or not, the encoding of its
		// signedness only (BTFDebug.cpp); decode treats signed bytes as
		// text, as it does for BTF.
		out = &btf.Int{Name: tt.Name, Size: uint32(tt.ByteSize), Encoding: btf.Signed}
	case *dwarf.UcharType:
		out = &btf.Int{Name: tt.Name, Size: uint32(tt.ByteSize)}
	case *dwarf.IntType:
		out = &btf.Int{Name: tt.Name, Size: uint32(tt.ByteSize), Encoding: btf.Signed}
	case *dwarf.UintType:
		out = &btf.Int{Name: tt.Name, Size: uint32(tt.ByteSize)}
	case *dwarf.AddrType:
		out = &btf.Int{Name: tt.Name, Size: uint32(tt.ByteSize)}
	case *dwarf.FloatType:
		out = &btf.Float{Name: tt.Name, Size: uint32(tt.ByteSize)}
	case *dwarf.EnumType:
		e := &btf.Enum{Name: tt.EnumName, Size: uint32(tt.ByteSize)}
		for _, v := range tt.Val {
			if v.Val < 0 {
				e.Signed = true
			}
			e.Values = append(e.Values, btf.EnumValue{Name: v.Name, Value: uint64(v.Val)})
		}
		out = e
	case *dwarf.TypedefType:
		td := &btf.Typedef{Name: tt.Name}
		c.memo[t] = td
		target, err := c.convert(tt.Type)
		if err != nil {
			return nil, err
		}
		td.Type = target
		return td, nil
	case *dwarf.PtrType:
		p := &btf.Pointer{}
		c.memo[t] = p
		target, err := c.convert(tt.Type)
		if err != nil {
			// What a pointer points at never matters to a record's
			// decoding: keep the pointer.
			target = &btf.Void{}
		}
		p.Target = target
		return p, nil
	case *dwarf.QualType:
		inner, err := c.convert(tt.Type)
		if err != nil {
			return nil, err
		}
		switch tt.Qual {
		case "const":
			out = &btf.Const{Type: inner}
		case "volatile":
			out = &btf.Volatile{Type: inner}
		case "restrict":
			out = &btf.Restrict{Type: inner}
		default:
			out = inner
		}
	case *dwarf.ArrayType:
		elem, err := c.convert(tt.Type)
		if err != nil {
			return nil, err
		}
		n := tt.Count
		if n < 0 {
			n = 0 // a flexible array member
		}
		out = &btf.Array{Index: &btf.Int{Name: "__ARRAY_SIZE_TYPE__", Size: 4}, Type: elem, Nelems: uint32(n)}
	case *dwarf.FuncType:
		out = &btf.FuncProto{Return: &btf.Void{}}
	case *dwarf.VoidType:
		out = &btf.Void{}
	default:
		return nil, fmt.Errorf("%w %T (%s)", errUnsupported, t, t)
	}
	c.memo[t] = out
	return out, nil
}

func (c *converter) structType(st *dwarf.StructType) (*btf.Struct, error) {
	if bt, ok := c.memo[st].(*btf.Struct); ok {
		return bt, nil
	}
	s := &btf.Struct{Name: st.StructName, Size: uint32(st.ByteSize)}
	c.memo[st] = s
	ms, err := c.members(st)
	if err != nil {
		return nil, err
	}
	s.Members = ms
	return s, nil
}

func (c *converter) members(st *dwarf.StructType) ([]btf.Member, error) {
	out := make([]btf.Member, 0, len(st.Field))
	for _, f := range st.Field {
		t, err := c.convert(f.Type)
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", f.Name, err)
		}
		m := btf.Member{Name: f.Name, Type: t, Offset: btf.Bits(f.ByteOffset * 8)}
		if f.BitSize > 0 {
			m.BitfieldSize = btf.Bits(f.BitSize)
			switch {
			case f.BitOffset != 0:
				// DWARF 2/3: bits from the most significant bit of a
				// storage unit of ByteSize bytes at ByteOffset.
				unit := f.ByteSize
				if unit == 0 {
					unit = f.Type.Size()
				}
				m.Offset = btf.Bits(f.ByteOffset*8 + unit*8 - f.BitOffset - f.BitSize)
			default:
				m.Offset = btf.Bits(f.DataBitOffset)
			}
		}
		out = append(out, m)
	}
	return out, nil
}
