package wasmstages

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// SET (ABI version 2) names an input and a msgpack map of fields; the host
// makes the event: the input with each field's value replaced where the
// input has the key, and the others appended. An enrichment (uid-to-user,
// a Go SDK Set) thereby costs the guest a few bytes of output instead of a
// copy of the event, and the host a scan in native code instead of a check
// of that copy.

// maxMapHeaderGrowth is the most a map header grows by when its count does:
// from a fixmap's one byte to a map32's five.
const maxMapHeaderGrowth = 4

// setKey is one field of a SET: where its key's bytes (the str payload) and
// its value lie in the fields map.
type setKey struct {
	keyStart, keyEnd int // the key's payload; its encoding starts at entry
	entry, valEnd    int // the whole entry: fields[entry:valEnd]
	valStart         int
	found            bool // set by planSet: input has the key
}

// setKeysInline is how many fields checkSetFields compares pairwise
// before it takes a map to find a key named twice; enrichments set one or
// two.
const setKeysInline = 8

// checkSetFields reports whether p is a SET's fields: exactly one
// well-formed msgpack map (nested at most codec.MaxDepth deep, as events
// are) whose keys are distinct strs. keys is scratch space, returned.
func checkSetFields(p []byte, keys []setKey) ([]setKey, error) {
	// One field of a fixstr key and a value whose first byte says its
	// size (a name, a number): an enrichment's, checked in line.
	if len(p) >= 3 && p[0] == 0x81 && p[1]&0xe0 == 0xa0 {
		if v := 2 + int(p[1]&0x1f); v < len(p) && fixedSize[p[v]] != 0 && v+int(fixedSize[p[v]]) == len(p) {
			return keys[:0], nil
		}
	}
	if err := checkEvent(p); err != nil {
		return keys, err
	}
	keys, err := readSetKeys(p, keys[:0])
	if err != nil {
		return keys, err
	}
	if len(keys) <= setKeysInline {
		for j := range keys {
			for k := range j {
				if bytes.Equal(p[keys[j].keyStart:keys[j].keyEnd], p[keys[k].keyStart:keys[k].keyEnd]) {
					return keys, fmt.Errorf("key %q twice", p[keys[j].keyStart:keys[j].keyEnd])
				}
			}
		}
		return keys, nil
	}
	seen := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		key := string(p[k.keyStart:k.keyEnd])
		if _, dup := seen[key]; dup {
			return keys, fmt.Errorf("key %q twice", key)
		}
		seen[key] = struct{}{}
	}
	return keys, nil
}

// readSetKeys appends the fields of the well-formed map p to keys; an
// error for a key that is not a str.
func readSetKeys(p []byte, keys []setKey) ([]setKey, error) {
	n, i := mapHead(p)
	if i < 0 {
		return keys, errors.New("not a msgpack map")
	}
	for range n {
		var ks, ke int
		if c := p[i]; c&0xe0 == 0xa0 {
			ks, ke = i+1, i+1+int(c&0x1f)
		} else if ks, ke = strPayload(p, i); ks < 0 {
			return keys, fmt.Errorf("a key at byte %d is not a string", i)
		}
		ve := ke + int(fixedSize[p[ke]])
		if ve == ke {
			ve = wellFormedAt(p, ke, 1)
		}
		keys = append(keys, setKey{keyStart: ks, keyEnd: ke, entry: i, valStart: ke, valEnd: ve})
		i = ve
	}
	return keys, nil
}

// strPayload returns the payload bounds of the str at b[i] of a
// well-formed b, or (-1, -1) for a value of another type.
func strPayload(b []byte, i int) (start, end int) {
	c := b[i]
	switch {
	case c&0xe0 == 0xa0:
		return i + 1, i + 1 + int(c&0x1f)
	case c == 0xd9:
		return i + 2, i + 2 + int(b[i+1])
	case c == 0xda:
		return i + 3, i + 3 + int(binary.BigEndian.Uint16(b[i+1:]))
	case c == 0xdb:
		return i + 5, i + 5 + int(binary.BigEndian.Uint32(b[i+1:]))
	}
	return -1, -1
}

// skipValue returns the offset past the value at b[i] of a well-formed b.
func skipValue(b []byte, i int) int {
	if sz := int(fixedSize[b[i]]); sz != 0 {
		return i + sz
	}
	return wellFormedAt(b, i, 1)
}

// setPlan is what a SET does to its input: the fields it names, and the
// values of input it replaces. It is scratch space, reused from one SET to
// the next.
type setPlan struct {
	keys  []setKey
	repl  []replace
	n     int // input's entry count
	first int // offset of input's first entry
	found int // keys input has
}

// replace says input[valStart:valEnd] gets the value of keys[key].
type replace struct{ valStart, valEnd, key int }

// planSet reads what setting the fields of set (checked by
// checkSetFields) on input (a well-formed msgpack map, as every event the
// pipeline carries) does: a key input has gets the new value in place (its
// first entry, which is the one stages read), the others are added after
// input's entries in set's order. It reports whether input has every
// field with the same encoded value already: then the event is input as it
// is, which a stage that sets what may be there already (a user name the
// decoder wrote) passes on without a copy.
func planSet(p *setPlan, input, set []byte) (same bool) {
	p.keys, _ = readSetKeys(set, p.keys[:0])
	p.repl = p.repl[:0]
	p.found = 0
	p.n, p.first = mapHead(input)
	// lens has bit l set when a key is l bytes long (l < 64): most of the
	// input's keys are ruled out by their length alone.
	var lens uint64
	for j := range p.keys {
		lens |= 1 << min(p.keys[j].keyEnd-p.keys[j].keyStart, 63)
	}
	for e, i := 0, p.first; e < p.n && p.found < len(p.keys); e++ {
		var ks, ke int
		if c := input[i]; c&0xe0 == 0xa0 {
			ks, ke = i+1, i+1+int(c&0x1f)
		} else if ks, ke = strPayload(input, i); ks < 0 {
			ke = skipValue(input, i) // a key of another type matches no str
		}
		// Stepping from entry to entry is a chain of dependent loads; the
		// sizes of the common values are computed from their first byte
		// by branches the processor predicts, rather than by one more
		// load from fixedSize (a third faster).
		var ve int
		if v := input[ke]; v&0xe0 == 0xa0 {
			ve = ke + 1 + int(v&0x1f)
		} else if v < 0x80 {
			ve = ke + 1
		} else if ve = ke + int(fixedSize[v]); ve == ke {
			ve = wellFormedAt(input, ke, 1)
		}
		if l := ke - ks; ks >= 0 && lens&(1<<min(l, 63)) != 0 {
			for j := range p.keys {
				k := &p.keys[j]
				if !k.found && k.keyEnd-k.keyStart == l && string(input[ks:ke]) == string(set[k.keyStart:k.keyEnd]) {
					k.found = true
					p.found++
					p.repl = append(p.repl, replace{ke, ve, j})
					break
				}
			}
		}
		i = ve
	}
	if p.found < len(p.keys) {
		return false
	}
	for _, r := range p.repl {
		k := &p.keys[r.key]
		if string(input[r.valStart:r.valEnd]) != string(set[k.valStart:k.valEnd]) {
			return false
		}
	}
	return true
}

// appendSet appends the event planSet planned.
func appendSet(dst []byte, p *setPlan, input, set []byte) []byte {
	dst = codec.AppendMapHeader(dst, p.n+len(p.keys)-p.found)
	at := p.first
	for _, r := range p.repl {
		k := &p.keys[r.key]
		dst = append(dst, input[at:r.valStart]...)
		dst = append(dst, set[k.valStart:k.valEnd]...)
		at = r.valEnd
	}
	dst = append(dst, input[at:]...)
	for j := range p.keys {
		if k := &p.keys[j]; !k.found {
			dst = append(dst, set[k.entry:k.valEnd]...)
		}
	}
	return dst
}

// setFields appends to dst input with the fields of set set (see planSet),
// or reports same and appends nothing.
func setFields(dst, input, set []byte) (out []byte, same bool) {
	var p setPlan
	if planSet(&p, input, set) {
		return dst, true
	}
	return appendSet(dst, &p, input, set), false
}
