package sources

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// ParamKind is the type of a gadget parameter.
type ParamKind uint8

const (
	ParamInt ParamKind = iota
	ParamUint
	ParamBool
	ParamString
)

func (k ParamKind) String() string {
	switch k {
	case ParamInt:
		return "int"
	case ParamUint:
		return "uint"
	case ParamBool:
		return "bool"
	case ParamString:
		return "string"
	}
	return "unknown"
}

// ParamSpec is a gadget parameter: a `const volatile` global the user may
// set before the gadget loads, so the verifier sees it as a constant. A
// gadget that marks its parameters (GADGET_PARAM) has those; one that marks
// none (a plain libbpf object) has every such global in .rodata.
type ParamSpec struct {
	Name string
	Kind ParamKind
	Size int // bytes; for strings the char array length (one is the NUL)
	// Type is the variable's C type as BTF names it ("pid_t", "__u64",
	// "char[16]", "enum mode").
	Type string
	// Enum lists an enum parameter's names, which are accepted as values.
	Enum []btf.EnumValue
	// Declared says a GADGET_PARAM marker names the variable; false for a
	// plain object's globals.
	Declared bool
	// Default is the value the gadget runs with unless one is set: the
	// gadget.yaml default when it has one, else the value in .rodata.
	Default string
	// Key is the name gadget.yaml gives the parameter (IG's key, such as
	// "pid" for targ_pid); it is accepted beside Name. "" when none.
	Key         string
	Description string // from gadget.yaml
	// SizesMap names the map this parameter sizes before load: a
	// parameter called <map>_max_entries sets that map's max_entries.
	SizesMap string

	rodataDefault string
}

// ErrUnknownParam reports a parameter the gadget does not have (a
// ParamError wrapping it); other ParamErrors are values that do not fit.
var ErrUnknownParam = errors.New("no such parameter")

// ParamError reports a parameter the gadget does not have or a value that
// does not fit its type.
type ParamError struct {
	Gadget string
	Name   string
	Value  string
	Reason string
	Valid  []string // the gadget's parameters, "name (kind)"
	// Err is ErrUnknownParam for a parameter the gadget does not have,
	// nil otherwise.
	Err error
}

// Unwrap makes errors.Is(err, ErrUnknownParam) tell an unknown parameter.
func (e *ParamError) Unwrap() error { return e.Err }

func unknownParam(gadget, name, value string, valid []string) *ParamError {
	return &ParamError{Gadget: gadget, Name: name, Value: value, Reason: ErrUnknownParam.Error(), Valid: valid, Err: ErrUnknownParam}
}

func (e *ParamError) Error() string {
	valid := "the gadget has no parameters"
	if len(e.Valid) > 0 {
		valid = "valid parameters: " + strings.Join(e.Valid, ", ")
	}
	return fmt.Sprintf("gadget %q parameter %q: %s (%s)", e.Gadget, e.Name, e.Reason, valid)
}

func paramSpecs(cs *ebpf.CollectionSpec, mk *markers) ([]ParamSpec, error) {
	var params []ParamSpec
	for name := range mk.params {
		v, ok := cs.Variables[name]
		if !ok {
			return nil, fmt.Errorf("GADGET_PARAM(%s) (marker %s): no global variable called %s", name, mk.params[name], name)
		}
		if !v.Constant() {
			return nil, fmt.Errorf("GADGET_PARAM(%s): the variable must be `const volatile` so the verifier sees its value", name)
		}
		p, err := paramSpec(name, v)
		if err != nil {
			return nil, fmt.Errorf("GADGET_PARAM(%s): %w", name, err)
		}
		p.Declared = true
		params = append(params, p)
	}
	if len(mk.params) == 0 {
		// A gadget that declares no parameters: every constant global a
		// libbpf loader would let its user set before load (min_us,
		// targ_pid, filtered_pid, ...). Types a parameter cannot hold
		// (structs, arrays of integers) stay as compiled.
		for name, v := range cs.Variables {
			if !v.Constant() || v.Type == nil || strings.HasPrefix(name, ".") {
				continue
			}
			if p, err := paramSpec(name, v); err == nil {
				params = append(params, p)
			}
		}
	}
	sort.Slice(params, func(i, j int) bool { return params[i].Name < params[j].Name })
	return params, nil
}

func paramSpec(name string, v *ebpf.VariableSpec) (ParamSpec, error) {
	if v.Type == nil {
		return ParamSpec{}, fmt.Errorf("no BTF for the variable")
	}
	p := ParamSpec{Name: name, Size: int(v.Size()), Type: cTypeName(v.Type.Type)}
	switch t := btf.UnderlyingType(v.Type.Type).(type) {
	case *btf.Int:
		switch {
		case t.Encoding&btf.Bool != 0:
			p.Kind = ParamBool
		case t.Encoding&btf.Signed != 0:
			p.Kind = ParamInt
		default:
			p.Kind = ParamUint
		}
	case *btf.Enum:
		p.Kind = ParamUint
		if t.Signed {
			p.Kind = ParamInt
		}
		p.Enum = t.Values
	case *btf.Array:
		elem, ok := btf.UnderlyingType(t.Type).(*btf.Int)
		if !ok || elem.Size != 1 {
			return p, fmt.Errorf("unsupported type %s: params are integers, bools, enums and char arrays", t)
		}
		p.Kind = ParamString
	default:
		return p, fmt.Errorf("unsupported type %s: params are integers, bools, enums and char arrays", t)
	}
	if p.Kind != ParamString && p.Size != 1 && p.Size != 2 && p.Size != 4 && p.Size != 8 {
		return p, fmt.Errorf("unsupported integer size %d", p.Size)
	}
	if len(v.Value) != p.Size {
		return p, fmt.Errorf("the variable has %d bytes of data for a %d-byte type", len(v.Value), p.Size)
	}
	p.Default = renderParam(p, v.Value)
	p.rodataDefault = p.Default
	return p, nil
}

// cTypeName spells a variable's type as C does, through qualifiers, for
// listings: "pid_t", "unsigned long long", "char[16]", "enum mode".
func cTypeName(t btf.Type) string {
	for i := 0; i < 16; i++ {
		switch tt := t.(type) {
		case *btf.Const:
			t = tt.Type
		case *btf.Volatile:
			t = tt.Type
		case *btf.Restrict:
			t = tt.Type
		case *btf.Array:
			return fmt.Sprintf("%s[%d]", cTypeName(tt.Type), tt.Nelems)
		case *btf.Enum:
			if tt.Name == "" {
				return "enum"
			}
			return "enum " + tt.Name
		default:
			if n := t.TypeName(); n != "" {
				return n
			}
			return fmt.Sprint(t)
		}
	}
	return fmt.Sprint(t)
}

func renderParam(p ParamSpec, raw []byte) string {
	if len(p.Enum) > 0 {
		u := readUint(raw)
		for _, e := range p.Enum {
			if e.Value == u || (p.Kind == ParamInt && int64(e.Value) == int64(u<<(64-8*uint(len(raw))))>>(64-8*uint(len(raw)))) {
				return e.Name
			}
		}
	}
	if p.Kind == ParamString {
		if i := bytes.IndexByte(raw, 0); i >= 0 {
			raw = raw[:i]
		}
		return string(raw)
	}
	u := readUint(raw)
	switch p.Kind {
	case ParamBool:
		return strconv.FormatBool(u != 0)
	case ParamInt:
		shift := 64 - 8*uint(len(raw))
		return strconv.FormatInt(int64(u<<shift)>>shift, 10)
	}
	return strconv.FormatUint(u, 10)
}

func readUint(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.NativeEndian.Uint16(b))
	case 4:
		return uint64(binary.NativeEndian.Uint32(b))
	case 8:
		return binary.NativeEndian.Uint64(b)
	}
	return 0
}

// encode converts a textual value into the variable's bytes.
func (p *ParamSpec) encode(value string) ([]byte, error) {
	out := make([]byte, p.Size)
	switch p.Kind {
	case ParamString:
		if len(value) > p.Size-1 {
			return nil, fmt.Errorf("is %d bytes long; at most %d fit", len(value), p.Size-1)
		}
		copy(out, value)
		return out, nil
	case ParamBool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return nil, fmt.Errorf("want a bool (true or false)")
		}
		if b {
			out[0] = 1
		}
		return out, nil
	case ParamInt:
		bits := 8 * p.Size
		if v, ok := p.enumValue(value); ok {
			putUint(out, v)
			return out, nil
		}
		n, err := strconv.ParseInt(value, 0, bits)
		if err != nil {
			return nil, fmt.Errorf("want a signed integer of %d bits", bits)
		}
		putUint(out, uint64(n))
		return out, nil
	default:
		bits := 8 * p.Size
		if v, ok := p.enumValue(value); ok {
			putUint(out, v)
			return out, nil
		}
		n, err := strconv.ParseUint(value, 0, bits)
		if err != nil {
			if len(p.Enum) > 0 {
				return nil, fmt.Errorf("want one of %s, or a number", p.enumNames())
			}
			return nil, fmt.Errorf("want an unsigned integer of %d bits (0 to %d)", bits, uint64(math.MaxUint64)>>(64-bits))
		}
		putUint(out, n)
		return out, nil
	}
}

func putUint(b []byte, v uint64) {
	switch len(b) {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.NativeEndian.PutUint16(b, uint16(v))
	case 4:
		binary.NativeEndian.PutUint32(b, uint32(v))
	case 8:
		binary.NativeEndian.PutUint64(b, v)
	}
}

func (p *ParamSpec) enumValue(name string) (uint64, bool) {
	for _, e := range p.Enum {
		if e.Name == name {
			return e.Value, true
		}
	}
	return 0, false
}

func (p *ParamSpec) enumNames() string {
	names := make([]string, len(p.Enum))
	for i, e := range p.Enum {
		names[i] = e.Name
	}
	return strings.Join(names, ", ")
}

// CheckParams validates values against the gadget's parameters without
// applying them. The error is a *ParamError.
func (g *GadgetSpec) CheckParams(values map[string]string) error {
	_, err := g.encodeParams(values)
	return err
}

func (g *GadgetSpec) encodeParams(values map[string]string) (map[string][]byte, error) {
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make(map[string][]byte, len(values))
	for _, name := range names {
		p, ok := g.paramByKey(name)
		if !ok {
			return nil, unknownParam(g.Name, name, values[name], g.paramList())
		}
		if _, dup := out[p.Name]; dup {
			return nil, &ParamError{Gadget: g.Name, Name: name, Value: values[name], Reason: fmt.Sprintf("set twice (as %s and %s)", p.Name, p.Key), Valid: g.paramList()}
		}
		b, err := p.encode(values[name])
		if err != nil {
			return nil, &ParamError{Gadget: g.Name, Name: name, Value: values[name], Reason: fmt.Sprintf("value %q: %s", values[name], err), Valid: g.paramList()}
		}
		out[p.Name] = b
	}
	// gadget.yaml defaults that differ from the compiled-in value are set
	// as if the user had set them (IG applies them the same way).
	for i := range g.Params {
		p := &g.Params[i]
		if _, set := out[p.Name]; set || p.Default == p.rodataDefault {
			continue
		}
		b, err := p.encode(p.Default)
		if err != nil {
			return nil, &ParamError{Gadget: g.Name, Name: p.Name, Value: p.Default, Reason: fmt.Sprintf("gadget.yaml default %q: %s", p.Default, err), Valid: g.paramList()}
		}
		out[p.Name] = b
	}
	return out, nil
}

func (g *GadgetSpec) paramList() []string {
	l := make([]string, 0, len(g.Params))
	for _, p := range g.Params {
		name := p.Name
		if p.Key != "" {
			name = p.Key + " or " + p.Name
		}
		l = append(l, fmt.Sprintf("%s (%s %s, default %q)", name, p.Kind, p.Type, p.Default))
	}
	return l
}

// applyParams writes encoded parameter values into a collection spec.
func applyParams(cs *ebpf.CollectionSpec, encoded map[string][]byte) error {
	for name, b := range encoded {
		v := cs.Variables[name]
		if err := v.Set(b); err != nil {
			return fmt.Errorf("set parameter %q: %w", name, err)
		}
	}
	return nil
}
