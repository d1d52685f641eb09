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
	found            bool // set by setFields: the input has the key
}

// setKeysInline is how many fields a SET may name before setFields takes
// its list from the heap; enrichments set one or two.
const setKeysInline = 8

// checkSetFields reports whether p is a SET's fields: exactly one
// well-formed msgpack map (nested at most codec.MaxDepth deep, as events
// are) whose keys are distinct strs.
func checkSetFields(p []byte) error {
	if err := checkEvent(p); err != nil {
		return err
	}
	var inline [setKeysInline]setKey
	keys, err := readSetKeys(p, inline[:0])
	if err != nil {
		return err
	}
	if len(keys) <= setKeysInline {
		for j := range keys {
			for k := range j {
				if bytes.Equal(p[keys[j].keyStart:keys[j].keyEnd], p[keys[k].keyStart:keys[k].keyEnd]) {
					return fmt.Errorf("key %q twice", p[keys[j].keyStart:keys[j].keyEnd])
				}
			}
		}
		return nil
	}
	seen := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		key := string(p[k.keyStart:k.keyEnd])
		if _, dup := seen[key]; dup {
			return fmt.Errorf("key %q twice", key)
		}
		seen[key] = struct{}{}
	}
	return nil
}

// readSetKeys appends the fields of the well-formed map p to keys; an
// error for a key that is not a str.
func readSetKeys(p []byte, keys []setKey) ([]setKey, error) {
	n, i := mapHead(p)
	if i < 0 {
		return keys, errors.New("not a msgpack map")
	}
	for range n {
		ks, ke := strPayload(p, i)
		if ks < 0 {
			return keys, fmt.Errorf("a key at byte %d is not a string", i)
		}
		ve := skipValue(p, ke)
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

// setFields appends to dst the event input (a well-formed msgpack map, as
// every event the pipeline carries) with the fields of set (checked by
// checkSetFields) set: a key input has gets the new value in place (its
// first entry, which is the one stages read), the others follow in set's
// order. same reports that input already had every field with the same
// encoded value, and then nothing is appended: the event is input as it
// is, which a stage that sets what may already be there (a user name the
// decoder wrote) passes on without a copy.
func setFields(dst, input, set []byte) (out []byte, same bool) {
	var inline [setKeysInline]setKey
	keys, _ := readSetKeys(set, inline[:0])
	// lens has bit l set when a key is l bytes long (l < 64): most of the
	// input's keys are ruled out by their length alone.
	var lens uint64
	for _, k := range keys {
		lens |= 1 << min(k.keyEnd-k.keyStart, 63)
	}
	n, i := mapHead(input)
	first := i
	// The replaced values, in input order: input[valStart:valEnd] gets
	// the value of keys[key].
	type replace struct{ valStart, valEnd, key int }
	var replInline [setKeysInline]replace
	repl := replInline[:0]
	found := 0
	for e := 0; e < n && found < len(keys); e++ {
		ks, ke := strPayload(input, i)
		if ks < 0 { // a key of another type matches no str
			ke = skipValue(input, i)
		}
		ve := skipValue(input, ke)
		if l := ke - ks; ks >= 0 && lens&(1<<min(l, 63)) != 0 {
			for j := range keys {
				k := &keys[j]
				if !k.found && k.keyEnd-k.keyStart == l && bytes.Equal(input[ks:ke], set[k.keyStart:k.keyEnd]) {
					k.found = true
					found++
					repl = append(repl, replace{ke, ve, j})
					break
				}
			}
		}
		i = ve
	}
	if found == len(keys) {
		same = true
		for _, r := range repl {
			k := &keys[r.key]
			if !bytes.Equal(input[r.valStart:r.valEnd], set[k.valStart:k.valEnd]) {
				same = false
				break
			}
		}
		if same {
			return dst, true
		}
	}
	dst = codec.AppendMapHeader(dst, n+len(keys)-found)
	at := first
	for _, r := range repl {
		k := &keys[r.key]
		dst = append(dst, input[at:r.valStart]...)
		dst = append(dst, set[k.valStart:k.valEnd]...)
		at = r.valEnd
	}
	dst = append(dst, input[at:]...)
	for j := range keys {
		if k := &keys[j]; !k.found {
			dst = append(dst, set[k.entry:k.valEnd]...)
		}
	}
	return dst, false
}
