package wasmstages

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// IG's struct accessors (fieldGetStruct, fieldPutStruct and their array
// forms) pass a whole struct as JSON: an object of its members, nested
// structs as nested objects; an array of structs as an array of objects.
//
// sluice flattens a gadget's nested C structs into dotted keys ("proc.comm",
// "proc.creds.uid"), which are IG's subfield names too, so the struct field
// "proc" of an event is the members under "proc.", in the event's order. An
// array of structs is a field whose value is a list of maps. Putting a
// struct replaces all of it, as IG's does: a member the JSON leaves out
// becomes its kind's zero; a key no member has is an error.

// structMembers returns the schema fields under the struct field f.
func (f *igField) structMembers() []pipeline.Field {
	prefix := f.name + "."
	var out []pipeline.Field
	for _, sf := range f.ds.schema.Fields {
		if strings.HasPrefix(sf.Name, prefix) {
			out = append(out, sf)
		}
	}
	return out
}

// isStructName reports whether the data source's schema has members
// under name (and no field of that name: that is the field itself).
func (ds *igDataSource) isStructName(name string) bool {
	if ds.schema == nil {
		return false
	}
	prefix := name + "."
	return slices.ContainsFunc(ds.schema.Fields, func(sf pipeline.Field) bool { return strings.HasPrefix(sf.Name, prefix) })
}

// jsonNode is a member of a struct being written out as JSON: a value, or
// the members of a nested struct in order.
type jsonNode struct {
	val      []byte // msgpack; nil for a struct
	names    []string
	children map[string]*jsonNode
}

func (n *jsonNode) child(name string) *jsonNode {
	if n.children == nil {
		n.children = map[string]*jsonNode{}
	}
	c, ok := n.children[name]
	if !ok {
		c = &jsonNode{}
		n.children[name] = c
		n.names = append(n.names, name)
	}
	return c
}

func (n *jsonNode) appendJSON(dst []byte) ([]byte, error) {
	if n.val != nil {
		return codec.AppendJSON(dst, n.val)
	}
	dst = append(dst, '{')
	for i, name := range n.names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendQuote(dst, name)
		dst = append(dst, ':')
		var err error
		if dst, err = n.children[name].appendJSON(dst); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// structJSON is the JSON object of struct field f in datum d.
func (d *igData) structJSON(f *igField) ([]byte, error) {
	if err := d.decode(); err != nil {
		return nil, err
	}
	root := &jsonNode{}
	prefix := f.name + "."
	for _, kv := range d.kv {
		rest, ok := strings.CutPrefix(kv.key, prefix)
		if !ok {
			continue
		}
		n := root
		parts := strings.Split(rest, ".")
		for _, p := range parts[:len(parts)-1] {
			n = n.child(p)
		}
		leaf := n.child(parts[len(parts)-1])
		if leaf.names != nil {
			// "a.b" and "a" both keys: keep the struct, the event's order
			// decided which came first.
			continue
		}
		leaf.val = kv.val
	}
	return root.appendJSON(nil)
}

// jsonValue is a JSON value as parsed in order: objects keep their keys'
// order (a struct array's elements become msgpack maps in that order).
type jsonValue struct {
	obj  []jsonMember
	arr  []jsonValue
	kind byte // 'o', 'a', 's', 'n' (number), 'b', 'z' (null)
	str  string
	num  json.Number
	b    bool
}

type jsonMember struct {
	key string
	val jsonValue
}

// maxJSONDepth bounds the nesting of the JSON a module passes.
const maxJSONDepth = 32

func parseJSON(b []byte) (jsonValue, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := readJSON(dec, 0)
	if err != nil {
		return v, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return v, errors.New("invalid JSON: text after the value")
	}
	return v, nil
}

func readJSON(dec *json.Decoder, depth int) (jsonValue, error) {
	if depth > maxJSONDepth {
		return jsonValue{}, fmt.Errorf("invalid JSON: nested deeper than %d", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return jsonValue{}, fmt.Errorf("invalid JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			v := jsonValue{kind: 'o'}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return v, fmt.Errorf("invalid JSON: %w", err)
				}
				key, _ := kt.(string)
				if slices.ContainsFunc(v.obj, func(m jsonMember) bool { return m.key == key }) {
					return v, fmt.Errorf("invalid JSON: key %q twice", key)
				}
				mv, err := readJSON(dec, depth+1)
				if err != nil {
					return v, err
				}
				v.obj = append(v.obj, jsonMember{key, mv})
			}
			_, err := dec.Token()
			return v, err
		case '[':
			v := jsonValue{kind: 'a'}
			for dec.More() {
				ev, err := readJSON(dec, depth+1)
				if err != nil {
					return v, err
				}
				v.arr = append(v.arr, ev)
			}
			_, err := dec.Token()
			return v, err
		}
	case string:
		return jsonValue{kind: 's', str: t}, nil
	case json.Number:
		return jsonValue{kind: 'n', num: t}, nil
	case bool:
		return jsonValue{kind: 'b', b: t}, nil
	case nil:
		return jsonValue{kind: 'z'}, nil
	}
	return jsonValue{}, fmt.Errorf("invalid JSON token %v", tok)
}

func (v jsonValue) get(key string) (jsonValue, bool) {
	for _, m := range v.obj {
		if m.key == key {
			return m.val, true
		}
	}
	return jsonValue{}, false
}

func (v jsonValue) what() string {
	return map[byte]string{'o': "an object", 'a': "an array", 's': "a string", 'n': "a number", 'b': "a bool", 'z': "null"}[v.kind]
}

// encodeAs encodes v as a value of kind k (a struct member's).
func (v jsonValue) encodeAs(k pipeline.FieldKind) ([]byte, error) {
	if v.kind == 'z' {
		return fieldZero(k), nil
	}
	bad := func() ([]byte, error) {
		return nil, fmt.Errorf("%s for a member holding %s values", v.what(), fieldKindName(k))
	}
	switch k {
	case pipeline.FieldString:
		if v.kind != 's' {
			return bad()
		}
		return codec.AppendString(nil, v.str), nil
	case pipeline.FieldBool:
		if v.kind != 'b' {
			return bad()
		}
		return codec.AppendBool(nil, v.b), nil
	case pipeline.FieldBytes:
		if v.kind != 's' { // bytes are base64 strings, as encoding/json writes them
			return bad()
		}
		b, err := base64.StdEncoding.DecodeString(v.str)
		if err != nil {
			return nil, fmt.Errorf("bytes member: %w", err)
		}
		return codec.AppendBytes(nil, b), nil
	case pipeline.FieldUint, pipeline.FieldInt:
		if v.kind != 'n' {
			return bad()
		}
		return numberAs(v.num, k)
	case pipeline.FieldFloat:
		if v.kind != 'n' {
			return bad()
		}
		f, err := v.num.Float64()
		if err != nil {
			return nil, err
		}
		return codec.AppendFloat64(nil, f), nil
	case pipeline.FieldList:
		if v.kind != 'a' {
			return bad()
		}
	}
	return v.encode(0)
}

// numberAs encodes an integer member; a number written with a fraction
// or exponent counts when it is whole (JSON encoders in some languages
// write every number as a float).
func numberAs(n json.Number, k pipeline.FieldKind) ([]byte, error) {
	if k == pipeline.FieldUint {
		if u, err := strconv.ParseUint(string(n), 10, 64); err == nil {
			return codec.AppendUint(nil, u), nil
		}
	} else if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return codec.AppendInt(nil, i), nil
	}
	f, err := n.Float64()
	switch {
	case err != nil || f != math.Trunc(f):
		return nil, fmt.Errorf("%s is not a whole number", n)
	case k == pipeline.FieldUint && (f < 0 || f >= 1<<64):
		return nil, fmt.Errorf("%s does not fit an unsigned integer", n)
	case k == pipeline.FieldInt && (f < -(1<<63) || f >= 1<<63):
		return nil, fmt.Errorf("%s does not fit an integer", n)
	case k == pipeline.FieldUint:
		return codec.AppendUint(nil, uint64(f)), nil
	}
	return codec.AppendInt(nil, int64(f)), nil
}

// encode encodes v as msgpack by its own shape: whole numbers as
// integers, objects as maps in their order.
func (v jsonValue) encode(depth int) ([]byte, error) {
	switch v.kind {
	case 's':
		return codec.AppendString(nil, v.str), nil
	case 'b':
		return codec.AppendBool(nil, v.b), nil
	case 'z':
		return codec.AppendNil(nil), nil
	case 'n':
		if u, err := strconv.ParseUint(string(v.num), 10, 64); err == nil {
			return codec.AppendUint(nil, u), nil
		}
		if i, err := strconv.ParseInt(string(v.num), 10, 64); err == nil {
			return codec.AppendInt(nil, i), nil
		}
		f, err := v.num.Float64()
		if err != nil {
			return nil, err
		}
		return codec.AppendFloat64(nil, f), nil
	case 'a':
		out := codec.AppendArrayHeader(nil, len(v.arr))
		for _, e := range v.arr {
			b, err := e.encode(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, b...)
		}
		return out, nil
	}
	out := codec.AppendMapHeader(nil, len(v.obj))
	for _, m := range v.obj {
		out = codec.AppendString(out, m.key)
		b, err := m.val.encode(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// putStruct replaces the members of struct field f in d with the JSON
// object src.
func (d *igData) putStruct(f *igField, src []byte) error {
	v, err := parseJSON(src)
	if err != nil {
		return err
	}
	if v.kind != 'o' {
		return fmt.Errorf("struct %q: want a JSON object, got %s", f.name, v.what())
	}
	members := f.structMembers()
	vals := make([][]byte, len(members))
	used := map[string]bool{} // the JSON paths a member took
	for i, m := range members {
		path := strings.Split(strings.TrimPrefix(m.Name, f.name+"."), ".")
		cur, found := v, true
		for j, p := range path {
			if cur.kind != 'o' {
				return fmt.Errorf("struct %q: %q is %s, not an object", f.name, strings.Join(path[:j], "."), cur.what())
			}
			if cur, found = cur.get(p); !found {
				break
			}
			used[strings.Join(path[:j+1], ".")] = true
		}
		if !found {
			vals[i] = fieldZero(m.Kind)
			continue
		}
		if vals[i], err = cur.encodeAs(m.Kind); err != nil {
			return fmt.Errorf("struct %q member %q: %w", f.name, strings.TrimPrefix(m.Name, f.name+"."), err)
		}
	}
	if unknown := unusedKeys(v, "", used); len(unknown) > 0 {
		names := make([]string, len(members))
		for i, m := range members {
			names[i] = strings.TrimPrefix(m.Name, f.name+".")
		}
		return fmt.Errorf("struct %q has no member %s (its members: %s)", f.name, strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	for i, m := range members {
		if err := d.set(m.Name, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// unusedKeys lists the keys of object v (and of objects in it that a
// member path went through) that no member took.
func unusedKeys(v jsonValue, prefix string, used map[string]bool) []string {
	var out []string
	for _, m := range v.obj {
		path := prefix + m.key
		if !used[path] {
			out = append(out, strconv.Quote(path))
			continue
		}
		if m.val.kind == 'o' {
			out = append(out, unusedKeys(m.val, path+".", used)...)
		}
	}
	return out
}

// structArray checks that raw is a list of maps.
func structArray(raw []byte) error {
	n, rest, err := codec.ReadArrayHeader(raw)
	if err != nil {
		return errors.New("holds no list")
	}
	for i := range n {
		if _, _, err := codec.ReadMapHeader(rest); err != nil {
			return fmt.Errorf("element %d is not a struct", i)
		}
		sz, err := codec.Skip(rest)
		if err != nil {
			return err
		}
		rest = rest[sz:]
	}
	return nil
}

// putStructArray replaces the list field f in d with the JSON array of
// objects src.
func (d *igData) putStructArray(f *igField, src []byte) error {
	v, err := parseJSON(src)
	if err != nil {
		return err
	}
	if v.kind != 'a' {
		return fmt.Errorf("struct array %q: want a JSON array, got %s", f.name, v.what())
	}
	for i, e := range v.arr {
		if e.kind != 'o' {
			return fmt.Errorf("struct array %q: element %d is %s, not an object", f.name, i, e.what())
		}
	}
	val, err := v.encode(0)
	if err != nil {
		return err
	}
	return d.set(f.name, val)
}

// structArgs returns the field and datum of a struct accessor, refusing a
// field that is not of the shape it accesses.
func (m *IGModule) structArgs(stack []uint64, array bool) (*igField, *igData, error) {
	f, d, err := m.fieldArgs(stack)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case !array && !f.isStruct:
		return nil, nil, fmt.Errorf("field %q is not a struct (a struct is a field with members: keys named %q)", f.name, f.name+".*")
	case array && (f.isStruct || f.fkind != pipeline.FieldList || f.added):
		return nil, nil, fmt.Errorf("field %q is not an array of structs (a list field of the gadget's)", f.name)
	}
	return f, d, nil
}

// fieldGetStruct(field, data, dst bufPtr) -> bytes written, -1 on failure.
func (m *IGModule) fieldGetStruct(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	f, d, err := m.structArgs(stack, false)
	if err != nil {
		return 0, err
	}
	js, err := d.structJSON(f)
	if err != nil {
		return 0, fmt.Errorf("struct %q: %w", f.name, err)
	}
	if err := igWrite(mod, stack[2], js); err != nil {
		return 0, fmt.Errorf("struct %q: %w", f.name, err)
	}
	return uint64(len(js)), nil
}

// fieldPutStruct(field, data, src bufPtr) -> 0, 1 on failure.
func (m *IGModule) fieldPutStruct(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	f, d, err := m.structArgs(stack, false)
	if err != nil {
		return 1, err
	}
	src, err := igBytes(mod, stack[2])
	if err != nil {
		return 1, err
	}
	return 0, d.putStruct(f, src)
}

// fieldGetStructArray(field, data, dst bufPtr) -> bytes written, -1 on
// failure.
func (m *IGModule) fieldGetStructArray(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	f, d, err := m.structArgs(stack, true)
	if err != nil {
		return 0, err
	}
	raw, err := d.value(f)
	if err != nil {
		return 0, err
	}
	if err := structArray(raw); err != nil {
		return 0, fmt.Errorf("field %q: %w", f.name, err)
	}
	js, err := codec.AppendJSON(nil, raw)
	if err != nil {
		return 0, fmt.Errorf("field %q: %w", f.name, err)
	}
	if err := igWrite(mod, stack[2], js); err != nil {
		return 0, fmt.Errorf("field %q: %w", f.name, err)
	}
	return uint64(len(js)), nil
}

// fieldPutStructArray(field, data, src bufPtr) -> 0, 1 on failure.
func (m *IGModule) fieldPutStructArray(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	f, d, err := m.structArgs(stack, true)
	if err != nil {
		return 1, err
	}
	if raw, err := d.value(f); err == nil && !isEmptyList(raw) {
		if err := structArray(raw); err != nil {
			return 1, fmt.Errorf("field %q: %w: it is not an array of structs", f.name, err)
		}
	}
	src, err := igBytes(mod, stack[2])
	if err != nil {
		return 1, err
	}
	return 0, d.putStructArray(f, src)
}

func isEmptyList(raw []byte) bool {
	n, _, err := codec.ReadArrayHeader(raw)
	return err == nil && n == 0
}
