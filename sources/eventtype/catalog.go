package eventtype

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// Origin says where a type was found.
type Origin uint8

const (
	FromBTF Origin = iota + 1
	FromDWARF
)

func (o Origin) String() string {
	switch o {
	case FromBTF:
		return "BTF"
	case FromDWARF:
		return "DWARF"
	}
	return "nowhere"
}

// Catalog holds the types of one object: its BTF and its DWARF, either of
// which may be missing. It is immutable after Load and safe for concurrent
// use (lookups convert DWARF types under a lock).
type Catalog struct {
	// Name says what the catalog was read from, in messages: "the
	// object", "event_type_file types.bpf.o".
	Name  string
	btf   *btf.Spec
	dwarf *dwarfIndex
}

// Load reads the types of an ELF object (its .BTF section and its DWARF)
// or of a raw BTF blob (as `bpftool btf dump file X format raw` does not
// write, but /sys/kernel/btf/* and `pahole --btf_encode_detached` do).
// name says what data is, in messages. An input with neither BTF nor
// DWARF is an error saying so.
func Load(name string, data []byte) (*Catalog, error) {
	c := &Catalog{Name: name}
	if !bytes.HasPrefix(data, []byte(elf.ELFMAG)) {
		spec, err := btf.LoadSpecFromReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("read %s: neither an ELF object nor raw BTF: %w", name, err)
		}
		c.btf = spec
		return c, nil
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(data))
	switch {
	case err == nil:
		c.btf = spec
	case errors.Is(err, btf.ErrNotFound):
	default:
		return nil, fmt.Errorf("read %s: BTF: %w", name, err)
	}
	if c.dwarf, err = readDWARF(f); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if c.btf == nil && c.dwarf == nil {
		return nil, fmt.Errorf("read %s: it has neither BTF nor DWARF (build it with clang -g, and do not strip it)", name)
	}
	return c, nil
}

// New is Load for an object whose BTF the caller has read already (a
// CollectionSpec's Types): only the DWARF is read from elfData.
func New(name string, types *btf.Spec, elfData []byte) (*Catalog, error) {
	c := &Catalog{Name: name, btf: types}
	f, err := elf.NewFile(bytes.NewReader(elfData))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	if c.dwarf, err = readDWARF(f); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return c, nil
}

// HasBTF and HasDWARF report what the catalog was read from.
func (c *Catalog) HasBTF() bool   { return c != nil && c.btf != nil }
func (c *Catalog) HasDWARF() bool { return c != nil && c.dwarf != nil }

// BTF returns the object's BTF, nil when it has none.
func (c *Catalog) BTF() *btf.Spec { return c.btf }

// Struct returns the struct called name: a struct of that name, or the
// anonymous struct a typedef of that name stands for (then the result
// carries the typedef's name). BTF is asked first, then DWARF. A "struct "
// prefix is accepted. It returns nil and no error when neither has it.
func (c *Catalog) Struct(name string) (*btf.Struct, Origin, error) {
	name = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), "struct "))
	if c.btf != nil {
		if st := btfStruct(c.btf, name); st != nil {
			return st, FromBTF, nil
		}
	}
	if c.dwarf != nil {
		st, err := c.dwarf.lookup(name)
		if err != nil || st != nil {
			return st, FromDWARF, err
		}
	}
	return nil, 0, nil
}

func btfStruct(spec *btf.Spec, name string) *btf.Struct {
	types, err := spec.AnyTypesByName(name)
	if err != nil {
		return nil
	}
	for _, t := range types {
		switch tt := t.(type) {
		case *btf.Struct:
			return tt
		case *btf.Typedef:
			if st, ok := btf.UnderlyingType(tt).(*btf.Struct); ok && st.Name == "" {
				named := *st
				named.Name = name
				return &named
			}
		}
	}
	return nil
}

// candidate is a named struct that may be an event type.
type candidate struct {
	name   string
	size   uint32
	origin Origin
	file   string // the declaring file, when DWARF says
	used   bool   // DWARF: a variable or parameter has it
	cat    *Catalog
}

// candidates lists the catalog's named structs of one of the sizes: every
// named struct of its BTF and every struct of its DWARF (each name once,
// BTF's first).
func (c *Catalog) candidates(sizes map[uint32]bool) []candidate {
	var out []candidate
	seen := map[string]bool{}
	// Where DWARF says a struct is declared holds for its BTF twin too.
	files := map[string]string{}
	if c.dwarf != nil {
		for _, s := range c.dwarf.structs {
			files[s.name] = s.file
		}
	}
	if c.btf != nil {
		for t, err := range c.btf.All() {
			if err != nil {
				break
			}
			name, st := "", (*btf.Struct)(nil)
			switch tt := t.(type) {
			case *btf.Struct:
				name, st = tt.Name, tt
			case *btf.Typedef:
				if s, ok := btf.UnderlyingType(tt).(*btf.Struct); ok && s.Name == "" {
					name, st = tt.Name, s
				}
			}
			if st == nil || name == "" || seen[name] || !sizes[st.Size] {
				continue
			}
			seen[name] = true
			out = append(out, candidate{name: name, size: st.Size, origin: FromBTF, file: files[name], cat: c})
		}
	}
	if c.dwarf != nil {
		for _, s := range c.dwarf.structs {
			if seen[s.name] || s.size < 0 || !sizes[uint32(s.size)] {
				continue
			}
			seen[s.name] = true
			out = append(out, candidate{name: s.name, size: uint32(s.size), origin: FromDWARF, file: s.file, used: c.dwarf.used[s.name], cat: c})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// usedStructs names the structs the object's code uses (DWARF variables
// and parameters), for messages that suggest an event_type.
func (c *Catalog) usedStructs() []string {
	if c.dwarf == nil {
		return nil
	}
	var out []string
	for _, s := range c.dwarf.structs {
		if c.dwarf.used[s.name] && !isKernelHeader(s.file) {
			out = append(out, s.name)
		}
	}
	sort.Strings(out)
	return out
}
