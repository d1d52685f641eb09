package wasmstages

import (
	"fmt"
	"maps"
	"slices"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// maxParamDepth bounds the nesting of params, well below codec.MaxDepth so
// that a guest decoding them with that limit accepts them.
const maxParamDepth = 32

// appendValue encodes one params value as msgpack. Maps are written with
// their keys sorted.
func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxParamDepth {
		return dst, fmt.Errorf("params nest deeper than %d levels", maxParamDepth)
	}
	var err error
	switch v := v.(type) {
	case nil:
		return codec.AppendNil(dst), nil
	case bool:
		return codec.AppendBool(dst, v), nil
	case string:
		return codec.AppendString(dst, v), nil
	case []byte:
		return codec.AppendBytes(dst, v), nil
	case int:
		return codec.AppendInt(dst, int64(v)), nil
	case int8:
		return codec.AppendInt(dst, int64(v)), nil
	case int16:
		return codec.AppendInt(dst, int64(v)), nil
	case int32:
		return codec.AppendInt(dst, int64(v)), nil
	case int64:
		return codec.AppendInt(dst, v), nil
	case uint:
		return codec.AppendUint(dst, uint64(v)), nil
	case uint8:
		return codec.AppendUint(dst, uint64(v)), nil
	case uint16:
		return codec.AppendUint(dst, uint64(v)), nil
	case uint32:
		return codec.AppendUint(dst, uint64(v)), nil
	case uint64:
		return codec.AppendUint(dst, v), nil
	case float32:
		return codec.AppendFloat64(dst, float64(v)), nil
	case float64:
		return codec.AppendFloat64(dst, v), nil
	case []string:
		dst = codec.AppendArrayHeader(dst, len(v))
		for _, s := range v {
			dst = codec.AppendString(dst, s)
		}
		return dst, nil
	case []any:
		dst = codec.AppendArrayHeader(dst, len(v))
		for i, e := range v {
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return dst, nil
	case map[string]string:
		dst = codec.AppendMapHeader(dst, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			dst = codec.AppendString(codec.AppendString(dst, k), v[k])
		}
		return dst, nil
	case map[string]any:
		dst = codec.AppendMapHeader(dst, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			dst = codec.AppendString(dst, k)
			if dst, err = appendValue(dst, v[k], depth+1); err != nil {
				return dst, fmt.Errorf("%s: %w", k, err)
			}
		}
		return dst, nil
	}
	return dst, fmt.Errorf("params value of type %T cannot be encoded (use nil, bool, string, numbers, lists and maps)", v)
}
