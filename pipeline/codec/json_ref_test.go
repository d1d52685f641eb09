package codec

// The transcoder as it was before the fast paths (commit 0791972), kept
// as the reference the faster one must match byte for byte.

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendJSONRef appends the JSON text of the first msgpack value in src to dst.
//
// Strings are escaped as JSON requires (quotes, backslashes, control
// characters); invalid UTF-8 becomes U+FFFD; <, > and & are left as they
// are, since the output is a data stream, not HTML. bin values become
// base64 strings, NaN and infinities null, ext values
// {"ext":TYPE,"data":"BASE64"}. Map keys that are not strings are written as
// strings holding their JSON text. On error, dst holds what was appended
// before the error; callers truncate it.
func AppendJSONRef(dst, src []byte) ([]byte, error) {
	dst, _, err := appendJSONRef(dst, src, 0)
	return dst, err
}

func appendJSONRef(dst, b []byte, depth int) ([]byte, []byte, error) {
	if depth > MaxDepth {
		return dst, b, ErrDepth
	}
	if len(b) == 0 {
		return dst, b, ErrShort
	}
	c := b[0]
	switch {
	case c <= 0x7f:
		return strconv.AppendUint(dst, uint64(c), 10), b[1:], nil
	case c >= 0xe0:
		return strconv.AppendInt(dst, int64(int8(c)), 10), b[1:], nil
	case c&0xe0 == 0xa0, c == 0xd9, c == 0xda, c == 0xdb:
		s, rest, err := ReadString(b)
		if err != nil {
			return dst, b, err
		}
		return appendJSONStringRef(dst, s), rest, nil
	case c&0xf0 == 0x90, c == 0xdc, c == 0xdd:
		n, rest, err := ReadArrayHeader(b)
		if err != nil {
			return dst, b, err
		}
		if n > len(rest) {
			return dst, b, ErrShort
		}
		dst = append(dst, '[')
		for i := 0; i < n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, rest, err = appendJSONRef(dst, rest, depth+1); err != nil {
				return dst, b, err
			}
		}
		return append(dst, ']'), rest, nil
	case c&0xf0 == 0x80, c == 0xde, c == 0xdf:
		n, rest, err := ReadMapHeader(b)
		if err != nil {
			return dst, b, err
		}
		if n > len(rest) {
			return dst, b, ErrShort
		}
		dst = append(dst, '{')
		for i := 0; i < n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if len(rest) == 0 { // fixed here too: it indexed an empty rest
				return dst, b, ErrShort
			}
			// Keys are short strings: fixstr, read inline.
			if c := rest[0]; c&0xe0 == 0xa0 && 1+int(c&0x1f) <= len(rest) {
				k := 1 + int(c&0x1f)
				dst = appendJSONStringRef(dst, rest[1:k])
				rest = rest[k:]
			} else if k, after, err := ReadString(rest); err == nil && isStrRef(rest[0]) {
				dst = appendJSONStringRef(dst, k)
				rest = after
			} else {
				// A non-string key: its JSON text, as a string.
				start := len(dst)
				if dst, rest, err = appendJSONRef(dst, rest, depth+1); err != nil {
					return dst, b, err
				}
				text := string(dst[start:])
				dst = appendJSONStringRef(dst[:start], []byte(text))
			}
			dst = append(dst, ':')
			if len(rest) == 0 {
				return dst, b, ErrShort
			}
			// The most common values inline: strings up to 255 bytes
			// and small unsigned integers.
			switch c := rest[0]; {
			case c <= 0x7f:
				dst = strconv.AppendUint(dst, uint64(c), 10)
				rest = rest[1:]
				continue
			case c&0xe0 == 0xa0 && 1+int(c&0x1f) <= len(rest):
				k := 1 + int(c&0x1f)
				dst = appendJSONStringRef(dst, rest[1:k])
				rest = rest[k:]
				continue
			case c == 0xd9 && len(rest) >= 2 && 2+int(rest[1]) <= len(rest):
				k := 2 + int(rest[1])
				dst = appendJSONStringRef(dst, rest[2:k])
				rest = rest[k:]
				continue
			}
			if dst, rest, err = appendJSONRef(dst, rest, depth+1); err != nil {
				return dst, b, err
			}
		}
		return append(dst, '}'), rest, nil
	}
	switch c {
	case 0xc0:
		return append(dst, "null"...), b[1:], nil
	case 0xc2:
		return append(dst, "false"...), b[1:], nil
	case 0xc3:
		return append(dst, "true"...), b[1:], nil
	case 0xcc, 0xcd, 0xce, 0xd0, 0xd1, 0xd2, 0xd3:
		v, rest, err := ReadInt(b)
		if err != nil {
			return dst, b, err
		}
		return strconv.AppendInt(dst, v, 10), rest, nil
	case 0xcf:
		v, rest, err := ReadUint(b)
		if err != nil {
			return dst, b, err
		}
		return strconv.AppendUint(dst, v, 10), rest, nil
	case 0xca, 0xcb:
		f, rest, err := ReadFloat64(b)
		if err != nil {
			return dst, b, err
		}
		bits := 64
		if c == 0xca {
			bits = 32
		}
		return appendFloatRef(dst, f, bits), rest, nil
	case 0xc4, 0xc5, 0xc6:
		data, rest, err := ReadString(b)
		if err != nil {
			return dst, b, err
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, data)
		return append(dst, '"'), rest, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7, 0xc8, 0xc9:
		n, err := Skip(b)
		if err != nil {
			return dst, b, err
		}
		typ, data := extPartsRef(b[:n])
		dst = append(dst, `{"ext":`...)
		dst = strconv.AppendInt(dst, int64(typ), 10)
		dst = append(dst, `,"data":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, data)
		return append(dst, `"}`...), b[n:], nil
	}
	return dst, b, ErrType
}

func isStrRef(c byte) bool { return c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb }

// extPartsRef splits a complete ext value into its type and data.
func extPartsRef(b []byte) (int8, []byte) {
	switch b[0] {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return int8(b[1]), b[2:]
	case 0xc7:
		return int8(b[2]), b[3:]
	case 0xc8:
		_ = binary.BigEndian.Uint16(b[1:])
		return int8(b[3]), b[4:]
	}
	return int8(b[5]), b[6:]
}

// appendFloatRef formats like encoding/json: shortest representation, 'e'
// notation only for very large or small magnitudes.
func appendFloatRef(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	return strconv.AppendFloat(dst, f, format, -1, bits)
}

const hexDigitsRef = "0123456789abcdef"

// Constants of the word-at-a-time scan in appendJSONStringRef: a byte
// needs attention when it is a control character, '"', '\\' or not ASCII.
const (
	onesRef   = 0x0101010101010101
	highsRef  = 0x8080808080808080
	spacesRef = 0x2020202020202020 // 0x20 in every byte
	quotesRef = 0x2222222222222222 // '"'
	slashsRef = 0x5c5c5c5c5c5c5c5c // '\\'
)

// plainWordRef reports whether none of the 8 bytes of w needs escaping.
// (w - 0x20..) & ^w & 0x80.. has a high bit set in a byte that was below
// 0x20 or not ASCII; zero bytes of w^'"' and w^'\\' are the quotes and
// backslashes (the classic "has a zero byte" test).
func plainWordRef(w uint64) bool {
	ctl := (w - spacesRef) &^ w
	q := w ^ quotesRef
	sl := w ^ slashsRef
	return (ctl|w|((q-onesRef)&^q)|((sl-onesRef)&^sl))&highsRef == 0
}

// appendJSONStringRef quotes s, copying runs of safe bytes at once. Most
// strings of events (keys, names, paths, times) need no escaping at all:
// they are checked eight bytes at a time and copied in one go.
func appendJSONStringRef(dst, s []byte) []byte {
	i := 0
	for i+8 <= len(s) && plainWordRef(binary.LittleEndian.Uint64(s[i:])) {
		i += 8
	}
	for i < len(s) && jsonPlainRef[s[i]] {
		i++
	}
	if i == len(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	return appendJSONStringSlowRef(append(dst, '"'), s, i)
}

// jsonPlainRef marks the bytes a JSON string holds as they are.
var jsonPlainRef = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONStringSlowRef quotes s (the opening quote is in dst), the
// first i bytes of which need no escaping.
func appendJSONStringSlowRef(dst, s []byte, i int) []byte {
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigitsRef[c>>4], hexDigitsRef[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript parsers.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigitsRef[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
