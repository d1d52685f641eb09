package sluice

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"
)

// Params are a stage's params: the HCL params attribute, as a msgpack map.
// Get reads one param; Decode fills a struct.
type Params struct {
	Value
}

// Decode decodes the params into the struct (or map) v points to.
//
// Struct fields match keys by their `sluice:"name"` tag, else a msgpack or
// json tag, else the field name compared ignoring case and underscores
// (KeyFields matches key_fields). `sluice:"name,required"` makes a key
// mandatory; `sluice:"-"` skips a field. Keys that match no field are an
// error, so a mistyped param is reported instead of ignored.
//
// Values convert as HCL produces them: numbers into any integer or float
// field (an integer field takes a whole number only, in range), strings into
// string fields and time.Duration ("1.5s", or a number of nanoseconds) or
// encoding.TextUnmarshaler fields, lists into slices and arrays, objects
// into nested structs and map[string]T, anything into any (as
// map[string]any, []any, int64, uint64, float64, string, bool or nil) and
// into Value (the raw encoding). Errors name the param's path:
// `params.comms[1]: want a string, got int`.
func (p Params) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("decode params: want a non-nil pointer, got %T", v)
	}
	raw := p.raw
	if len(raw) == 0 {
		raw = []byte{0x80}
	}
	return decodeValue(Value{raw: raw}, rv.Elem(), "params")
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	valueType     = reflect.TypeFor[Value]()
	unmarshalType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func decodeValue(v Value, rv reflect.Value, path string) error {
	t := rv.Type()
	typ := v.Type()
	if t == valueType {
		rv.Set(reflect.ValueOf(Value{raw: append([]byte(nil), v.raw...)}))
		return nil
	}
	if typ == TypeNil {
		rv.SetZero()
		return nil
	}
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			rv.Set(reflect.New(t.Elem()))
		}
		return decodeValue(v, rv.Elem(), path)
	}
	if t == durationType {
		return decodeDuration(v, rv, path)
	}
	if rv.CanAddr() && rv.Addr().Type().Implements(unmarshalType) && typ == TypeString {
		s, _ := v.Str()
		if err := rv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	switch rv.Kind() {
	case reflect.Bool:
		b, ok := v.Bool()
		if !ok {
			return wantErr(path, "a bool", typ)
		}
		rv.SetBool(b)
	case reflect.String:
		s, ok := v.Str()
		if !ok {
			return wantErr(path, "a string", typ)
		}
		rv.SetString(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := wholeNumber(v, path)
		if err != nil {
			return err
		}
		if rv.OverflowInt(n) {
			return fmt.Errorf("%s: %d is out of range for %s", path, n, t)
		}
		rv.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u, ok := v.Uint()
		if !ok {
			n, err := wholeNumber(v, path)
			if err != nil {
				return err
			}
			if n < 0 {
				return fmt.Errorf("%s: %d is negative; want a number >= 0", path, n)
			}
			u = uint64(n)
		}
		if rv.OverflowUint(u) {
			return fmt.Errorf("%s: %d is out of range for %s", path, u, t)
		}
		rv.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, ok := v.Float()
		if !ok {
			return wantErr(path, "a number", typ)
		}
		rv.SetFloat(f)
	case reflect.Slice:
		if typ != TypeArray {
			return wantErr(path, "a list", typ)
		}
		s := reflect.MakeSlice(t, 0, v.Len())
		i := 0
		for el := range v.Elems() {
			s = reflect.Append(s, reflect.Zero(t.Elem()))
			if err := decodeValue(el, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
			i++
		}
		rv.Set(s)
	case reflect.Array:
		if typ != TypeArray {
			return wantErr(path, "a list", typ)
		}
		if v.Len() != rv.Len() {
			return fmt.Errorf("%s: want a list of %d, got %d", path, rv.Len(), v.Len())
		}
		i := 0
		for el := range v.Elems() {
			if err := decodeValue(el, rv.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
			i++
		}
	case reflect.Map:
		if typ != TypeMap {
			return wantErr(path, "an object", typ)
		}
		if t.Key().Kind() != reflect.String {
			return fmt.Errorf("%s: cannot decode into %s: map keys must be strings", path, t)
		}
		m := reflect.MakeMapWithSize(t, v.Len())
		var err error
		for k, el := range v.Entries() {
			ev := reflect.New(t.Elem()).Elem()
			if err = decodeValue(el, ev, path+"."+string(k)); err != nil {
				break
			}
			m.SetMapIndex(reflect.ValueOf(string(k)).Convert(t.Key()), ev)
		}
		if err != nil {
			return err
		}
		rv.Set(m)
	case reflect.Struct:
		return decodeStruct(v, rv, path)
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return fmt.Errorf("%s: cannot decode into %s", path, t)
		}
		x, err := decodeAny(v, path)
		if err != nil {
			return err
		}
		if x == nil {
			rv.SetZero()
		} else {
			rv.Set(reflect.ValueOf(x))
		}
	default:
		return fmt.Errorf("%s: cannot decode into %s", path, t)
	}
	return nil
}

func wantErr(path, want string, got Type) error {
	return fmt.Errorf("%s: want %s, got %s", path, want, got)
}

// wholeNumber reads an integer, or a float holding a whole number (HCL
// numbers may arrive either way).
func wholeNumber(v Value, path string) (int64, error) {
	if n, ok := v.Int(); ok {
		return n, nil
	}
	if v.Type() == TypeInt { // an unsigned value past MaxInt64
		return 0, fmt.Errorf("%s: number is out of range", path)
	}
	f, ok := v.Float()
	if !ok {
		return 0, wantErr(path, "a number", v.Type())
	}
	if !floatIsInt(f) {
		return 0, fmt.Errorf("%s: %v is not a whole number", path, f)
	}
	return int64(f), nil
}

func decodeDuration(v Value, rv reflect.Value, path string) error {
	if s, ok := v.Str(); ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%s: %q is not a duration (e.g. \"1s\", \"250ms\")", path, s)
		}
		rv.SetInt(int64(d))
		return nil
	}
	n, err := wholeNumber(v, path)
	if err != nil {
		return fmt.Errorf("%s: want a duration such as \"1s\", got %s", path, v.Type())
	}
	rv.SetInt(n)
	return nil
}

type fieldInfo struct {
	index    int
	name     string // the key, or "" to match by normalised field name
	norm     string
	required bool
}

func structFields(t reflect.Type) []fieldInfo {
	var fs []fieldInfo
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts := "", ""
		for _, tag := range []string{"sluice", "msgpack", "json"} {
			if v, ok := f.Tag.Lookup(tag); ok {
				name, opts, _ = strings.Cut(v, ",")
				break
			}
		}
		if name == "-" {
			continue
		}
		fs = append(fs, fieldInfo{
			index:    i,
			name:     name,
			norm:     normalise(f.Name),
			required: strings.Contains(","+opts+",", ",required,"),
		})
	}
	return fs
}

func normalise(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "_", "")
}

func (f *fieldInfo) matches(key string) bool {
	if f.name != "" {
		return f.name == key
	}
	return f.norm == normalise(key)
}

func (f *fieldInfo) key(t reflect.Type) string {
	if f.name != "" {
		return f.name
	}
	return t.Field(f.index).Name
}

func decodeStruct(v Value, rv reflect.Value, path string) error {
	if v.Type() != TypeMap {
		return wantErr(path, "an object", v.Type())
	}
	t := rv.Type()
	fields := structFields(t)
	seen := make([]bool, len(fields))
	var err error
	for k, el := range v.Entries() {
		key := string(k)
		j := -1
		for i := range fields {
			if fields[i].matches(key) {
				j = i
				break
			}
		}
		if j < 0 {
			known := make([]string, len(fields))
			for i := range fields {
				known[i] = fields[i].key(t)
			}
			err = fmt.Errorf("%s: unknown param %q (known: %s)", path, key, strings.Join(known, ", "))
			break
		}
		seen[j] = true
		if err = decodeValue(el, rv.Field(fields[j].index), path+"."+key); err != nil {
			break
		}
	}
	if err != nil {
		return err
	}
	for i := range fields {
		if fields[i].required && !seen[i] {
			return fmt.Errorf("%s: missing required param %q", path, fields[i].key(t))
		}
	}
	return nil
}

// decodeAny decodes v into plain Go values.
func decodeAny(v Value, path string) (any, error) {
	switch v.Type() {
	case TypeNil:
		return nil, nil
	case TypeBool:
		b, _ := v.Bool()
		return b, nil
	case TypeInt:
		if n, ok := v.Int(); ok {
			return n, nil
		}
		u, _ := v.Uint()
		return u, nil
	case TypeFloat:
		f, _ := v.Float()
		if floatIsInt(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
		return f, nil
	case TypeString, TypeBytes:
		s, _ := v.Str()
		return s, nil
	case TypeArray:
		out := make([]any, 0, v.Len())
		i := 0
		for el := range v.Elems() {
			x, err := decodeAny(el, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out = append(out, x)
			i++
		}
		return out, nil
	case TypeMap:
		out := make(map[string]any, v.Len())
		for k, el := range v.Entries() {
			x, err := decodeAny(el, path+"."+string(k))
			if err != nil {
				return nil, err
			}
			out[string(k)] = x
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: cannot decode a %s value", path, v.Type())
}
