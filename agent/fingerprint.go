package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"reflect"
	"slices"

	"github.com/hashicorp/hcl/v2"
)

var (
	rangeType = reflect.TypeFor[hcl.Range]()
	posType   = reflect.TypeFor[hcl.Pos]()
)

// fingerprint digests the values a component is built from, so that a
// reload can tell an unchanged component from a changed one. Source
// positions (hcl.Range) are left out: a block that only moved in the file,
// or gained a comment above it, is the same component.
func fingerprint(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		writeValue(h, reflect.ValueOf(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeValue(h hash.Hash, v reflect.Value) {
	if !v.IsValid() {
		h.Write([]byte{0})
		return
	}
	if v.Type() == rangeType || v.Type() == posType {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			h.Write([]byte{0})
			return
		}
		h.Write([]byte{1})
		writeValue(h, v.Elem())
	case reflect.Struct:
		fmt.Fprintf(h, "{%s", v.Type())
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				writeValue(h, v.Field(i))
			}
		}
		h.Write([]byte{'}'})
	case reflect.Slice, reflect.Array:
		fmt.Fprintf(h, "[%d", v.Len())
		for i := range v.Len() {
			writeValue(h, v.Index(i))
		}
		h.Write([]byte{']'})
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int {
			return cmpString(fmt.Sprint(a.Interface()), fmt.Sprint(b.Interface()))
		})
		fmt.Fprintf(h, "m%d", len(keys))
		for _, k := range keys {
			writeValue(h, k)
			writeValue(h, v.MapIndex(k))
		}
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		// Not configuration.
	default:
		fmt.Fprintf(h, "%s:%v;", v.Kind(), v.Interface())
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
