package eventtype

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// How says how an event type was chosen.
type How string

const (
	ByMarker     How = "marker"      // GADGET_TRACER names it
	ByHint       How = "hint"        // event_type in the config
	ByMapValue   How = "map value"   // __type(value, struct X) on the map
	ByRecordSize How = "record size" // the one non-kernel struct of the size the programs reserve
)

// Query describes one output map whose record type is wanted.
type Query struct {
	// Map is the output map's name, for messages.
	Map string
	// Hint is the struct the config names (event_type), "" for none.
	Hint string
	// Object holds the program object's types.
	Object *Catalog
	// File holds the types of event_type_file, nil when none is given.
	File *Catalog
	// MapValue is the map's BTF value type (__type(value, ...)), nil when
	// it has none.
	MapValue btf.Type
	// Sizes are the constant record sizes the programs pass with the map
	// to bpf_ringbuf_reserve, bpf_ringbuf_output or bpf_perf_event_output.
	Sizes []uint32
	// Kernel is the running kernel's BTF; a struct of the same name and
	// size there is a kernel type, never guessed as an event type. nil
	// when it is not known.
	Kernel *btf.Spec
	// CORE names the structs the programs reach through CO-RE relocations
	// (kernel types by construction), never guessed either.
	CORE map[string]bool
}

// Result is the chosen event type and how it was found.
type Result struct {
	Type *btf.Struct
	How  How
	// From says where the type came from: "BTF" or "DWARF" of the object,
	// or of event_type_file ("event_type_file x.o (DWARF)").
	From string
}

func (r Result) String() string {
	if r.Type == nil {
		return "no event type"
	}
	return fmt.Sprintf("struct %s (%d bytes; by %s, from %s)", r.Type.Name, r.Type.Size, r.How, r.From)
}

// ErrNotFound is wrapped by errors for a hint naming a struct that no
// catalog holds.
var ErrNotFound = errors.New("event type not found")

// Find chooses the struct the records of one output map hold: the hint,
// looked up in the object's BTF, then its DWARF, then event_type_file;
// else the map's value type; else the one struct of the record size the
// programs use that is not a kernel type. It never guesses among several,
// and never takes a kernel type (the context struct of a probe that
// happens to have the record's size) without a hint: the error says what
// was found and what to do.
func Find(q Query) (Result, error) {
	if q.Hint != "" {
		return findHint(q)
	}
	if q.MapValue != nil {
		if st, ok := btf.UnderlyingType(q.MapValue).(*btf.Struct); ok {
			return Result{Type: st, How: ByMapValue, From: from(q.Object, FromBTF)}, nil
		}
	}
	return findBySize(q)
}

func from(c *Catalog, o Origin) string {
	if c.Name == "" || c.Name == "the object" {
		return "the object's " + o.String()
	}
	return fmt.Sprintf("%s (%s)", c.Name, o)
}

func findHint(q Query) (Result, error) {
	name := strings.TrimSpace(strings.TrimPrefix(q.Hint, "struct "))
	for _, c := range []*Catalog{q.Object, q.File} {
		if c == nil {
			continue
		}
		st, origin, err := c.Struct(name)
		if err != nil {
			return Result{}, err
		}
		if st != nil {
			return Result{Type: st, How: ByHint, From: from(c, origin)}, nil
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "struct %s is not in the object's BTF", name)
	switch {
	case q.Object.HasDWARF():
		b.WriteString(" nor in its DWARF")
		if close := closeNames(name, q.Object, q.File); len(close) > 0 {
			fmt.Fprintf(&b, " (structs it has: %s)", strings.Join(close, ", "))
		}
	default:
		b.WriteString(": clang drops types used only by locals; reference it from a global (`struct " + name + " *unused_" + name + " __attribute__((unused));`), or build with -g and do not strip the object, so DWARF keeps it")
	}
	if q.File != nil {
		fmt.Fprintf(&b, "; %s does not have it either", q.File.Name)
	} else {
		b.WriteString("; or give a file that has it with event_type_file (a header compiled with clang -g -fno-eliminate-unused-debug-types -target bpf -c)")
	}
	return Result{}, fmt.Errorf("%w: %s", ErrNotFound, b.String())
}

// closeNames lists the catalogs' non-kernel struct names, at most eight,
// so a typo in a hint shows what is there.
func closeNames(hint string, cats ...*Catalog) []string {
	var out []string
	for _, c := range cats {
		if c == nil {
			continue
		}
		out = append(out, c.usedStructs()...)
	}
	sort.Strings(out)
	if len(out) > 8 {
		out = append(out[:8], "...")
	}
	return out
}

func findBySize(q Query) (Result, error) {
	what := fmt.Sprintf("cannot tell the event type of map %s", q.Map)
	todo := "set event_type in the source (--event-type for sluice run)"
	if len(q.Sizes) == 0 {
		msg := fmt.Sprintf("%s: its programs pass it no constant record size (variable-length records?)", what)
		if used := closeNames("", q.Object, q.File); len(used) > 0 {
			msg += fmt.Sprintf("; structs the programs use: %s", strings.Join(used, ", "))
		}
		return Result{}, errors.New(msg + "; " + todo)
	}
	sizes := map[uint32]bool{}
	for _, s := range q.Sizes {
		sizes[s] = true
	}
	var cands, kernel []candidate
	var reasons []string
	for _, c := range []*Catalog{q.Object, q.File} {
		if c == nil {
			continue
		}
		for _, cand := range c.candidates(sizes) {
			if why := kernelType(q, cand); why != "" {
				kernel = append(kernel, cand)
				reasons = append(reasons, fmt.Sprintf("struct %s (%s)", cand.name, why))
				continue
			}
			cands = append(cands, cand)
		}
	}
	// With DWARF, a struct the code never holds in a variable is not what
	// it writes: prefer the ones it does.
	if len(cands) > 1 {
		var used []candidate
		for _, c := range cands {
			if c.used {
				used = append(used, c)
			}
		}
		if len(used) > 0 {
			cands = used
		}
	}
	sizeText := sizeList(q.Sizes)
	switch {
	case len(cands) == 1:
		c := cands[0]
		st, origin, err := c.cat.Struct(c.name)
		if err != nil {
			return Result{}, err
		}
		if st == nil {
			return Result{}, fmt.Errorf("%s: struct %s vanished from %s", what, c.name, c.cat.Name)
		}
		return Result{Type: st, How: ByRecordSize, From: from(c.cat, origin)}, nil
	case len(cands) > 1:
		names := make([]string, len(cands))
		for i, c := range cands {
			names[i] = c.name
		}
		return Result{}, fmt.Errorf("%s: several structs have the record size %s (%s); %s", what, sizeText, strings.Join(names, ", "), todo)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: the programs write records of %s", what, sizeText)
	where := "the object's BTF"
	if q.Object.HasDWARF() {
		where = "the object's BTF and DWARF"
	}
	if q.File != nil {
		where += " and " + q.File.Name
	}
	if len(kernel) > 0 {
		fmt.Fprintf(&b, "; the only structs of that size in %s are kernel types, which are never taken for an event type: %s", where, strings.Join(reasons, ", "))
	} else {
		fmt.Fprintf(&b, "; no struct of that size is in %s", where)
	}
	if !q.Object.HasDWARF() {
		b.WriteString("; the object has no DWARF, and clang leaves types used only by locals out of BTF")
	}
	b.WriteString("; " + todo + " and build the object with -g without stripping it, so DWARF keeps the type; or reference the type from a global; or give a file that has it with event_type_file")
	return Result{}, errors.New(b.String())
}

// kernelType says why a candidate is a kernel type, "" when it is not.
func kernelType(q Query, c candidate) string {
	if isKernelHeader(c.file) {
		return "declared in " + c.file
	}
	if q.CORE[c.name] {
		return "read through CO-RE relocations"
	}
	if q.Kernel != nil {
		var kst *btf.Struct
		if err := q.Kernel.TypeByName(c.name, &kst); err == nil && kst.Size == c.size {
			return "the kernel's BTF has it"
		}
	}
	return ""
}

func sizeList(sizes []uint32) string {
	s := append([]uint32(nil), sizes...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = fmt.Sprintf("%d bytes", n)
	}
	return strings.Join(parts, " or ")
}
