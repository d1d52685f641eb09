package codec

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the JSON text of the first msgpack value in src to dst.
//
// Strings are escaped as JSON requires (quotes, backslashes, control
// characters); invalid UTF-8 becomes U+FFFD; <, > and & are left as they
// are, since the output is a data stream, not HTML. bin values become
// base64 strings, NaN and infinities null, ext values
// {"ext":TYPE,"data":"BASE64"}. Map keys that are not strings are written as
// strings holding their JSON text. On error, dst holds what was appended
// before the error; callers truncate it.
func AppendJSON(dst, src []byte) ([]byte, error) {
	dst, _, err := appendJSON(dst, src, 0)
	return dst, err
}

func appendJSON(dst, b []byte, depth int) ([]byte, []byte, error) {
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
		return appendJSONString(dst, s), rest, nil
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
			if dst, rest, err = appendJSON(dst, rest, depth+1); err != nil {
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
		dst, p, err := appendMap(dst, b, len(b)-len(rest), n, depth, nil)
		if err != nil {
			return dst, b, err
		}
		return dst, b[p:], nil
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
		return appendFloat(dst, f, bits), rest, nil
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
		typ, data := extParts(b[:n])
		dst = append(dst, `{"ext":`...)
		dst = strconv.AppendInt(dst, int64(typ), 10)
		dst = append(dst, `,"data":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, data)
		return append(dst, `"}`...), b[n:], nil
	}
	return dst, b, ErrType
}

func isStr(c byte) bool { return c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb }

// extParts splits a complete ext value into its type and data.
func extParts(b []byte) (int8, []byte) {
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

// appendFloat formats like encoding/json: shortest representation, 'e'
// notation only for very large or small magnitudes.
func appendFloat(dst []byte, f float64, bits int) []byte {
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

const hexDigits = "0123456789abcdef"

// Constants of the word-at-a-time scan in appendJSONString: a byte
// needs attention when it is a control character, '"', '\\' or not ASCII.
const (
	ones   = 0x0101010101010101
	highs  = 0x8080808080808080
	spaces = 0x2020202020202020 // 0x20 in every byte
	quotes = 0x2222222222222222 // '"'
	slashs = 0x5c5c5c5c5c5c5c5c // '\\'
)

// plainWord reports whether none of the 8 bytes of w needs escaping.
// (w - 0x20..) & ^w & 0x80.. has a high bit set in a byte that was below
// 0x20 or not ASCII; zero bytes of w^'"' and w^'\\' are the quotes and
// backslashes (the classic "has a zero byte" test).
func plainWord(w uint64) bool {
	ctl := (w - spaces) &^ w
	q := w ^ quotes
	sl := w ^ slashs
	return (ctl|w|((q-ones)&^q)|((sl-ones)&^sl))&highs == 0
}

// appendJSONString quotes s, copying runs of safe bytes at once. Most
// strings of events (keys, names, paths, times) need no escaping at all:
// they are checked eight bytes at a time and copied in one go.
func appendJSONString(dst, s []byte) []byte {
	i := 0
	for i+8 <= len(s) && plainWord(binary.LittleEndian.Uint64(s[i:])) {
		i += 8
	}
	for i < len(s) && jsonPlain[s[i]] {
		i++
	}
	if i == len(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	return appendJSONStringSlow(append(dst, '"'), s, i)
}

// jsonPlain marks the bytes a JSON string holds as they are.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONStringSlow quotes s (the opening quote is in dst), the
// first i bytes of which need no escaping.
func appendJSONStringSlow(dst, s []byte, i int) []byte {
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
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
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
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendMap appends the JSON object of the n entries of the map b whose
// first key is at b[p], returning the position after the map. Events are
// maps, so this loop is the transcoder's hot path: the common keys and
// values (short strings, integers) are handled inline, and strings are
// checked eight bytes at a time with loads that may reach into the bytes
// around them in b (never beyond b).
func appendMap(dst, b []byte, p, n, depth int, e *Encoder) ([]byte, int, error) {
	if n == 0 {
		return append(dst, '{', '}'), p, nil
	}
	sep := byte('{')
	entryAt, entryOut := -1, 0 // the entry before, to be cached
	for i := 0; i < n; i++ {
		if entryAt >= 0 {
			e.keepEntry(i-1, b, entryAt, p, dst[entryOut:])
			entryAt = -1
		}
		if p >= len(b) {
			return dst, p, ErrShort
		}
		if e != nil && i < len(e.keys) {
			switch k := &e.keys[i]; {
			case k.en > 0 && p+32 <= len(b):
				if out, ok := k.appendEntry(dst, b, p); ok {
					dst, p, sep = out, p+int(k.en), ','
					continue
				}
				// A value that changes (a time, a sequence number):
				// comparing and keeping it would only cost.
				k.en, k.skip = 0, volatileSkip
			case k.skip > 0:
				k.skip--
			default:
				entryAt, entryOut = p, len(dst)
			}
		}
		if c := b[p]; c&0xe0 == 0xa0 && p+1+int(c&0x1f) < len(b) {
			// A fixstr key followed by at least one byte of its value.
			from, to := p+1, p+1+int(c&0x1f)
			if out, ok := e.appendKey(dst, b, from, to, i, sep); ok {
				dst = out
			} else if out, ok := appendShortPlain(dst, b, from, to, sep, ':'); ok {
				dst = out
			} else {
				dst = appendStringIn(append(dst, sep), b, from, to)
				dst = append(dst, ':')
			}
			p = to
		} else {
			var err error
			if dst, p, err = appendKey(append(dst, sep), b, p, depth); err != nil {
				return dst, p, err
			}
			if p >= len(b) {
				return dst, p, ErrShort
			}
		}
		sep = ','
		switch c := b[p]; {
		case c <= 0x7f:
			dst = appendSmallUint(dst, c)
			p++
			continue
		case c&0xe0 == 0xa0:
			if to := p + 1 + int(c&0x1f); to <= len(b) {
				if out, ok := appendShortPlain(dst, b, p+1, to, 0, 0); ok {
					dst = out
				} else {
					dst = appendStringIn(dst, b, p+1, to)
				}
				p = to
				continue
			}
		case c == 0xd9:
			if p+2 <= len(b) {
				if to := p + 2 + int(b[p+1]); to <= len(b) {
					dst = appendStringIn(dst, b, p+2, to)
					p = to
					continue
				}
			}
		case c >= 0xcc && c <= 0xcf:
			if size := 1 << (c - 0xcc); p+1+size <= len(b) {
				dst = appendUint(dst, beUint(b[p+1:], size))
				p += 1 + size
				continue
			}
		case c >= 0xd0 && c <= 0xd3:
			if size := 1 << (c - 0xd0); p+1+size <= len(b) {
				v := beUint(b[p+1:], size)
				shift := 64 - 8*size // sign-extend from size bytes
				dst = appendInt(dst, int64(v<<shift)>>shift)
				p += 1 + size
				continue
			}
		case c >= 0xe0:
			dst = append(dst, '-')
			dst = appendSmallUint(dst, byte(-int8(c)))
			p++
			continue
		}
		rest, err := []byte(nil), error(nil)
		if dst, rest, err = appendJSON(dst, b[p:], depth+1); err != nil {
			return dst, p, err
		}
		p = len(b) - len(rest)
	}
	if entryAt >= 0 {
		e.keepEntry(n-1, b, entryAt, p, dst[entryOut:])
	}
	return append(dst, '}'), p, nil
}

// An Encoder transcodes events like AppendJSON, to the same bytes, but
// faster for a stream of events with the same keys (the events of one
// source): it remembers the top-level keys of the events it saw, by
// position, with their JSON text, and copies that when the next event has
// the same key at the same position. The zero value is ready; an Encoder
// is not safe for concurrent use.
type Encoder struct {
	keys []cachedKey
	tpl  template // the shape of the events before (template.go)
}

// cachedKey is the entry at one position of the last event: its key's
// bytes (keys of at most 16 bytes are cached) and what it becomes, and the
// whole entry, key and value, with its JSON, when both are short: the
// entries a source repeats from event to event (host, source, gadget,
// pid, comm, ...) are then compared and copied a word at a time.
type cachedKey struct {
	w0, w1 uint64    // the key's bytes, zero past its end
	hdr    byte      // its fixstr header; 0: none cached
	n      uint8     // bytes of out
	en     uint8     // bytes of the entry's msgpack, up to 32; 0: none
	skip   uint8     // events to pass before caching the entry again
	enOut  uint8     // bytes of entryOut
	out    [3]uint64 // the separator, the quoted key and the colon
	// The entry's msgpack (zero past en bytes) and the masks that cut
	// a loaded word to it; its JSON with the separator.
	entry, entryMask [4]uint64
	entryOut         [5]uint64
}

// appendEntry appends the cached entry's JSON when the bytes at b[p]
// (32 of which lie within b) are the cached entry.
func (k *cachedKey) appendEntry(dst, b []byte, p int) ([]byte, bool) {
	if binary.LittleEndian.Uint64(b[p:])&k.entryMask[0] != k.entry[0] ||
		binary.LittleEndian.Uint64(b[p+8:])&k.entryMask[1] != k.entry[1] ||
		binary.LittleEndian.Uint64(b[p+16:])&k.entryMask[2] != k.entry[2] ||
		binary.LittleEndian.Uint64(b[p+24:])&k.entryMask[3] != k.entry[3] {
		return dst, false
	}
	l := len(dst)
	if cap(dst)-l < 40 {
		dst = slices.Grow(dst, 40)
	}
	out := dst[l : l+40]
	for w := range 5 {
		binary.LittleEndian.PutUint64(out[8*w:], k.entryOut[w])
	}
	return dst[:l+int(k.enOut)], true
}

// keepEntry caches the entry b[from:to] at position i, whose JSON (with
// the separator) is js, when both are short; else it forgets the entry
// cached there. JSON is a function of the msgpack bytes alone, so the
// same bytes at the same position become the same text.
func (e *Encoder) keepEntry(i int, b []byte, from, to int, js []byte) {
	if i >= len(e.keys) {
		return // not cached (i >= maxCachedKeys, or a key appendKey left)
	}
	k := &e.keys[i]
	n := to - from
	if n > 32 || len(js) > 40 || from+32 > len(b) {
		k.en = 0
		return
	}
	for w := range 4 {
		m := shortMasks[min(max(n-8*w, 0), 8)][0]
		k.entryMask[w] = m
		k.entry[w] = binary.LittleEndian.Uint64(b[from+8*w:]) & m
	}
	var out [40]byte
	copy(out[:], js)
	for w := range 5 {
		k.entryOut[w] = binary.LittleEndian.Uint64(out[8*w:])
	}
	k.en, k.enOut = uint8(n), uint8(len(js))
}

// volatileSkip is how many events an entry that changed is not cached.
const volatileSkip = 16

// maxCachedKeys bounds an Encoder's memory whatever the events hold.
const maxCachedKeys = 128

// AppendJSON appends the JSON text of the first msgpack value in src to
// dst, as the package's AppendJSON does. A nil Encoder caches nothing.
func (e *Encoder) AppendJSON(dst, src []byte) ([]byte, error) {
	if len(src) == 0 || !(src[0]&0xf0 == 0x80 || src[0] == 0xde || src[0] == 0xdf) {
		return AppendJSON(dst, src)
	}
	useTemplate := false
	if e != nil {
		t := &e.tpl
		t.since++
		if t.off > 0 {
			t.off--
		} else if useTemplate = true; len(t.ops) > 0 {
			if out, ok := t.append(dst, src); ok {
				t.strays = 0
				return out, nil
			}
		}
	}
	n, rest, err := ReadMapHeader(src)
	if err != nil {
		return dst, err
	}
	if n > len(rest) {
		return dst, ErrShort
	}
	dst, _, err = appendMap(dst, src, len(src)-len(rest), n, 0, e)
	if err == nil && useTemplate {
		e.tpl.observe(src)
	}
	return dst, err
}

// appendKey appends the separator sep, the key b[from:to] (whose fixstr
// header is b[from-1]) quoted, and the colon when the key is the one
// cached for position i, or can be cached there; it returns false for
// keys it leaves to the caller, and always when e is nil.
func (e *Encoder) appendKey(dst, b []byte, from, to, i int, sep byte) ([]byte, bool) {
	n := to - from
	if e == nil || n > 16 || from+16 > len(b) || i >= maxCachedKeys {
		return dst, false
	}
	m0, m1 := shortMasks[n][0], shortMasks[n][1]
	w0 := binary.LittleEndian.Uint64(b[from:]) & m0
	w1 := binary.LittleEndian.Uint64(b[from+8:]) & m1
	for len(e.keys) <= i { // positions before i may hold keys not cached
		e.keys = append(e.keys, cachedKey{})
	}
	k := &e.keys[i]
	if k.hdr != b[from-1] || k.w0 != w0 || k.w1 != w1 {
		if !plainWord(w0|plainFill&^m0) || !plainWord(w1|plainFill&^m1) {
			return dst, false
		}
		var out [24]byte
		out[0], out[1] = sep, '"'
		binary.LittleEndian.PutUint64(out[2:], w0)
		binary.LittleEndian.PutUint64(out[10:], w1)
		out[2+n], out[3+n] = '"', ':'
		*k = cachedKey{w0: w0, w1: w1, hdr: b[from-1], n: uint8(4 + n), out: [3]uint64{
			binary.LittleEndian.Uint64(out[0:]), binary.LittleEndian.Uint64(out[8:]), binary.LittleEndian.Uint64(out[16:])}}
	}
	l := len(dst)
	if cap(dst)-l < 24 {
		dst = slices.Grow(dst, 24)
	}
	out := dst[l : l+24]
	binary.LittleEndian.PutUint64(out[0:], k.out[0])
	binary.LittleEndian.PutUint64(out[8:], k.out[1])
	binary.LittleEndian.PutUint64(out[16:], k.out[2])
	return dst[:l+int(k.n)], true
}

// appendKey appends the key at b[p] that is not a fixstr with a value
// after it, and the colon, returning the position after the key.
func appendKey(dst, b []byte, p, depth int) ([]byte, int, error) {
	rest := b[p:]
	if k, after, err := ReadString(rest); err == nil && isStr(rest[0]) {
		return append(appendJSONString(dst, k), ':'), len(b) - len(after), nil
	}
	// A non-string key: its JSON text, as a string.
	start := len(dst)
	dst, after, err := appendJSON(dst, rest, depth+1)
	if err != nil {
		return dst, p, err
	}
	text := string(dst[start:])
	dst = appendJSONString(dst[:start], []byte(text))
	return append(dst, ':'), len(b) - len(after), nil
}

// beUint reads a big-endian unsigned integer of size 1, 2, 4 or 8 bytes.
func beUint(b []byte, size int) uint64 {
	switch size {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	}
	return binary.BigEndian.Uint64(b)
}

// appendStringIn quotes the string b[from:to].
func appendStringIn(dst, b []byte, from, to int) []byte {
	if out, ok := appendPlainIn(dst, b, from, to); ok {
		return out
	}
	return appendJSONStringSlow(append(dst, '"'), b[from:to], 0)
}

// appendShortPlain quotes the string b[from:to] of at most 16 bytes
// when none of its bytes needs escaping and the two words from b[from]
// lie within b, with the byte pre before it and post after it (0: none);
// else it returns dst as it was and false. It is the path of most keys
// and many values: two loads, one check, two stores.
func appendShortPlain(dst, b []byte, from, to int, pre, post byte) ([]byte, bool) {
	n := to - from
	if n > 16 || from+16 > len(b) {
		return dst, false
	}
	w0 := binary.LittleEndian.Uint64(b[from:])
	w1 := binary.LittleEndian.Uint64(b[from+8:])
	m0, m1 := shortMasks[n][0], shortMasks[n][1]
	if !plainWord(w0&m0|plainFill&^m0) || !plainWord(w1&m1|plainFill&^m1) {
		return dst, false
	}
	l := len(dst)
	if cap(dst)-l < 20 {
		dst = slices.Grow(dst, 20)
	}
	out := dst[l : l+20]
	j := 0
	if pre != 0 {
		out[0] = pre
		j = 1
	}
	out[j] = '"'
	binary.LittleEndian.PutUint64(out[j+1:], w0)
	binary.LittleEndian.PutUint64(out[j+9:], w1)
	j += 1 + n
	out[j] = '"'
	j++
	if post != 0 {
		out[j] = post
		j++
	}
	return dst[:l+j], true
}

// shortMasks[n] keeps the first n bytes of two words.
var shortMasks = func() (m [17][2]uint64) {
	for n := range m {
		for i := range n {
			m[n][i/8] |= 0xff << (8 * (i % 8))
		}
	}
	return m
}()

// plainFill is a word of plain bytes ('A'), for the bytes of a loaded
// word that lie outside the string checked.
const plainFill = 0x4141414141414141

// appendPlainIn quotes the string b[from:to] when none of its bytes needs
// escaping, else returns dst as it was and false. It checks and copies
// eight bytes at a time, storing whole words into dst's spare capacity
// (the bytes past the string are overwritten by what follows it); a tail
// shorter than a word is checked in the word that starts at it or the one
// that ends with it, whichever lies within b, the bytes outside the string
// masked as plain.
func appendPlainIn(dst, b []byte, from, to int) ([]byte, bool) {
	n := to - from
	l := len(dst)
	if cap(dst)-l < n+10 {
		dst = slices.Grow(dst, n+10)
	}
	out := dst[l : l+n+10]
	out[0] = '"'
	j, i := 1, from
	for ; i+8 <= to; i, j = i+8, j+8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if !plainWord(w) {
			return dst[:l], false
		}
		binary.LittleEndian.PutUint64(out[j:], w)
	}
	if r := uint(to - i); r > 0 {
		switch {
		case i+8 <= len(b):
			w := binary.LittleEndian.Uint64(b[i:])
			keep := uint64(1)<<(8*r) - 1 // the low r bytes
			if !plainWord(w&keep | plainFill&^keep) {
				return dst[:l], false
			}
			binary.LittleEndian.PutUint64(out[j:], w)
		case to >= 8:
			drop := uint64(1)<<(8*(8-r)) - 1 // the low 8-r bytes, before i
			if !plainWord(binary.LittleEndian.Uint64(b[to-8:])&^drop | plainFill&drop) {
				return dst[:l], false
			}
			copy(out[j:], b[i:to])
		default:
			for k := i; k < to; k++ {
				if !jsonPlain[b[k]] {
					return dst[:l], false
				}
			}
			copy(out[j:], b[i:to])
		}
		j += int(r)
	}
	out[j] = '"'
	return dst[:l+j+1], true
}

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// appendSmallUint appends v (at most 127: a positive fixint) in decimal.
func appendSmallUint(dst []byte, v byte) []byte {
	switch {
	case v < 10:
		return append(dst, '0'+v)
	case v < 100:
		return append(dst, digitPairs[2*v], digitPairs[2*v+1])
	}
	v -= 100
	return append(dst, '1', digitPairs[2*v], digitPairs[2*v+1])
}

// appendInt appends v in decimal, as strconv.AppendInt(dst, v, 10).
func appendInt(dst []byte, v int64) []byte {
	if v < 0 {
		return appendUint(append(dst, '-'), uint64(-v)) // -MinInt64 wraps to itself, read as unsigned: right
	}
	return appendUint(dst, uint64(v))
}

// decimalLen is the number of decimal digits of v.
func decimalLen(v uint64) int {
	n := (bits.Len64(v) * 1233) >> 12 // about log10(2) per bit, at most one short
	if n < len(powersOf10) && v >= powersOf10[n] {
		n++
	}
	return max(n, 1)
}

var powersOf10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}
