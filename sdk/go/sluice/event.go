package sluice

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
	"unsafe"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// noInput is the input index of events derived from no input (ticks,
// summaries), as the ABI spells it.
const noInput = math.MaxUint32

// Event is one event of a batch: a view of its msgpack map plus the changes
// a handler made to it. Field access scans the map in place, without
// decoding it; Set and Delete record changes that are encoded only when the
// event is emitted, and an event emitted without changes is passed on by
// reference (KEEP), never re-encoded.
//
// An *Event handed to a handler, and those made by NewEvent and Clone, are
// valid until the current call from the host (one batch, one tick) returns:
// keep plain values, not events, across batches. Events are not safe for
// concurrent use (a stage runs on one thread anyway).
type Event struct {
	raw   []byte // the input map, or nil for an event made by NewEvent
	index uint32 // input index in the batch, or noInput
	input bool   // raw is the unchanged input of index (it may be KEPT)
	kept  bool   // a KEEP for index has been written
	gen   uint32 // the call this event belongs to

	edits []edit
	vals  []byte // the encoded values of edits

	// after is 0 before the event's first field lookup, then the offset
	// in raw just past the value the last lookup in raw found (-1 after
	// a miss): where a Set of the field that follows it looks for the
	// value it would replace (sameAsNext).
	after   int
	ix      []entry // the entries of raw, once indexed
	indexed bool    // ix has been built
	ixOK    bool    // raw was well-formed to its end when ix was built
	first   int     // offset of the first entry in raw
	cursor  int     // where rawIndexOf starts looking
	act     []int32 // scratch of appendEncoded
	adds    []int32 // scratch of appendEncoded
}

// edit is a Set (val is vals[start:end]) or a Delete (end < 0).
type edit struct {
	key        string
	start, end int32
}

// entry locates one key/value pair of raw.
type entry struct {
	keyStart, keyEnd, valEnd int32 // the value is raw[keyEnd:valEnd]
	strKey                   bool  // raw[keyStart:keyEnd] is a str payload
}

// reset points e at another event. It runs once per event, so it only
// touches what later calls test first (ix is truncated when built).
func (e *Event) reset(raw []byte, index uint32, input bool, gen uint32) {
	e.raw, e.index, e.input, e.kept, e.gen = raw, index, input, false, gen
	if len(e.edits) != 0 {
		e.edits = e.edits[:0]
		e.vals = e.vals[:0]
	}
	e.after = 0
	e.indexed = false
}

// Raw returns the event's encoding as it arrived, without the changes made
// since (nil for an event made by NewEvent). It aliases the batch.
func (e *Event) Raw() []byte { return e.raw }

// Changed reports whether Set or Delete was called on the event. A Set
// found to change nothing (see SetString) does not count.
func (e *Event) Changed() bool { return len(e.edits) > 0 }

// Get returns the value of a field, taking changes made by Set and Delete
// into account; the zero Value when the field is missing.
func (e *Event) Get(key string) Value { return Value{raw: e.lookup(key)} }

// lookup returns the encoding of a field's value, nil when missing. It is
// the one call between a getter and the scan, and kept small: in Go's Wasm
// code every call level, and every extra local in a function, costs about
// as much as stepping over a field.
func (e *Event) lookup(key string) []byte {
	if len(e.edits) == 0 && e.after == 0 {
		// Most filters read one field: scan for it and stop there.
		// The batch's key table (findFirst), tested here: a call level
		// costs as much as the test.
		t := &current.keys
		if i := e.index; t.gen == e.gen && i < t.n && len(key) == len(t.key) && unsafe.StringData(key) == unsafe.StringData(t.key) {
			if vs, ve := t.offs[2*i], t.offs[2*i+1]; vs <= ve && ve <= uint32(len(e.raw)) {
				e.after = int(ve)
				return e.raw[vs:ve:ve]
			}
		}
		s, end := e.findFirstSlow(key)
		if s < 0 {
			e.after = -1
			return nil
		}
		e.after = end
		return e.raw[s:end:end]
	}
	return e.lookupMore(key)
}

// lookupMore looks at the changes first, then, from the second lookup of
// an event on, indexes the event once and compares keys only.
func (e *Event) lookupMore(key string) []byte {
	for i := len(e.edits) - 1; i >= 0; i-- {
		if ed := &e.edits[i]; ed.key == key {
			if ed.end < 0 {
				return nil
			}
			return e.vals[ed.start:ed.end:ed.end]
		}
	}
	e.buildIndex()
	if i := e.rawIndexOf(key); i >= 0 {
		en := &e.ix[i]
		e.after = int(en.valEnd)
		return e.raw[en.keyEnd:en.valEnd:en.valEnd]
	}
	e.after = -1
	return nil
}

// buildIndex fills e.ix with the entries of raw, once. When raw is
// malformed, ix holds the entries before the damage and ixOK is false.
func (e *Event) buildIndex() {
	if e.indexed {
		return
	}
	e.indexed = true
	e.ix = e.ix[:0]
	e.cursor = 0
	e.ixOK = e.indexEntries()
}

func (e *Event) indexEntries() bool {
	b := e.raw
	n, i := mapHeader(b, 0)
	if i < 0 {
		return false
	}
	e.first = i
	ix := slices.Grow(e.ix[:0], n)
	for ; n > 0; n-- {
		if i >= len(b) {
			e.ix = ix
			return false
		}
		// Fast path, as in findKey: a fixstr key and a fixed-size value
		// cost a table lookup and no call.
		var ks, ke int
		str := true
		if c := b[i]; c&0xe0 == 0xa0 {
			ks, ke = i+1, i+1+int(c&0x1f)
		} else if ks, ke = strBounds(b, i); ks < 0 {
			str, ks = false, i
			if ke = skip(b, i); ke < 0 {
				e.ix = ix
				return false
			}
		}
		if ke >= len(b) {
			e.ix = ix
			return false
		}
		end := ke + int(sizeTab[b[ke]])
		if end == ke {
			end = skip(b, ke)
		}
		if end < 0 || end > len(b) {
			e.ix = ix
			return false
		}
		ix = append(ix, entry{keyStart: int32(ks), keyEnd: int32(ke), valEnd: int32(end), strKey: str})
		i = end
	}
	e.ix = ix
	return true
}

// Has reports whether the event has the field.
func (e *Event) Has(key string) bool { return e.Get(key).Exists() }

// String returns a str field as a string (a copy), or "" when the field is
// missing or not a string. Compare with StringBytes to avoid the copy.
func (e *Event) String(key string) string {
	s, _ := e.Get(key).Str()
	return s
}

// StringBytes returns a str field's bytes without copying them (nil when
// missing or not a string). The slice aliases the batch: use it to compare
// (string(b) == "x" and map[string(b)] do not allocate), not to keep.
func (e *Event) StringBytes(key string) []byte {
	if len(e.edits) == 0 && e.after == 0 {
		// lookup's fast path, repeated here to save a call level on the
		// hottest getter (string compares are what filters do).
		s, end := e.findFirst(key)
		e.after = end
		if s >= 0 && e.raw[s]&0xe0 == 0xa0 && s+1+int(e.raw[s]&0x1f) == end {
			return e.raw[s+1 : end : end]
		}
		if s < 0 {
			e.after = -1
			return nil
		}
		b, _ := Value{raw: e.raw[s:end:end]}.StringBytes()
		return b
	}
	b, _ := Value{raw: e.lookupMore(key)}.StringBytes()
	return b
}

// Int returns an integer field, or 0 when missing or of another type.
func (e *Event) Int(key string) int64 {
	n, _ := e.Get(key).Int()
	return n
}

// Uint returns a non-negative integer field, or 0.
func (e *Event) Uint(key string) uint64 {
	n, _ := e.Get(key).Uint()
	return n
}

// Float returns a float or integer field as a float64, or 0.
func (e *Event) Float(key string) float64 {
	f, _ := e.Get(key).Float()
	return f
}

// Bool returns a boolean field, or false.
func (e *Event) Bool(key string) bool {
	b, _ := e.Get(key).Bool()
	return b
}

// Strings returns the str elements of a list field such as trace_exec's
// args, as strings (copies). Iterate e.Get(key).Elems() to avoid copies.
func (e *Event) Strings(key string) []string { return e.Get(key).Strings() }

// Each calls fn for every field of the event as it arrived (before Set and
// Delete), in encoding order, until fn returns false.
func (e *Event) Each(fn func(key []byte, v Value) bool) {
	eachEntry(e.raw, fn)
}

// Index returns the event's position in its batch, or -1 for an event made
// by NewEvent.
func (e *Event) Index() int {
	if e.index == noInput {
		return -1
	}
	return int(e.index)
}

// SetString sets a field to a str value.
//
// All setters skip a change that changes nothing: when the event has no
// changes yet and the field right after the one read last is this key
// with these very bytes (an enrichment that finds the name there already),
// the event stays unchanged and is passed on as it came. Elsewhere in the
// event an equal value is set like any other.
func (e *Event) SetString(key, v string) *Event {
	s := len(e.vals)
	e.vals = codec.AppendString(e.vals, v)
	return e.addEdit(key, s)
}

// SetStringBytes sets a field to a str value holding b.
func (e *Event) SetStringBytes(key string, b []byte) *Event {
	s := len(e.vals)
	e.vals = codec.AppendStringBytes(e.vals, b)
	return e.addEdit(key, s)
}

// SetInt sets a field to an integer.
func (e *Event) SetInt(key string, v int64) *Event {
	s := len(e.vals)
	e.vals = codec.AppendInt(e.vals, v)
	return e.addEdit(key, s)
}

// SetUint sets a field to a non-negative integer.
func (e *Event) SetUint(key string, v uint64) *Event {
	s := len(e.vals)
	e.vals = codec.AppendUint(e.vals, v)
	return e.addEdit(key, s)
}

// SetFloat sets a field to a float64.
func (e *Event) SetFloat(key string, v float64) *Event {
	s := len(e.vals)
	e.vals = codec.AppendFloat64(e.vals, v)
	return e.addEdit(key, s)
}

// SetBool sets a field to a boolean.
func (e *Event) SetBool(key string, v bool) *Event {
	s := len(e.vals)
	e.vals = codec.AppendBool(e.vals, v)
	return e.addEdit(key, s)
}

// SetStrings sets a field to a list of strings.
func (e *Event) SetStrings(key string, v []string) *Event {
	s := len(e.vals)
	e.vals = codec.AppendArrayHeader(e.vals, len(v))
	for _, x := range v {
		e.vals = codec.AppendString(e.vals, x)
	}
	return e.addEdit(key, s)
}

// SetValue sets a field to an encoded value, e.g. one read from another
// field or built with a Writer. It panics if v is not one well-formed
// msgpack value, since emitting it would make the whole batch malformed.
func (e *Event) SetValue(key string, v Value) *Event {
	if len(v.raw) == 0 || skip(v.raw, 0) != len(v.raw) {
		panic(fmt.Sprintf("sluice: Set %q: value is not one well-formed msgpack value", key))
	}
	s := len(e.vals)
	e.vals = append(e.vals, v.raw...)
	return e.addEdit(key, s)
}

// Set sets a field to a Go value: nil, bool, any integer or float type,
// string, []byte (bin), []string, time.Time (RFC 3339 text, as the envelope
// has it), time.Duration (nanoseconds), Value, []any and map[string]any
// (keys sorted), nested freely. It panics on other types. The typed setters
// (SetString, SetInt, ...) do the same without boxing the value.
func (e *Event) Set(key string, v any) *Event {
	s := len(e.vals)
	e.vals = appendAny(e.vals, v, key)
	return e.addEdit(key, s)
}

// Delete removes a field (a no-op for a missing field).
func (e *Event) Delete(key string) *Event {
	e.edits = append(e.edits, edit{key: key, start: 0, end: -1})
	return e
}

func (e *Event) addEdit(key string, start int) *Event {
	if len(e.edits) == 0 && e.after > 0 && e.nextHolds(key, e.vals[start:]) {
		// The field says so already: no change, so the event can be
		// passed on as it came (KEEP) instead of the host rebuilding it
		// with the same bytes (SET).
		e.vals = e.vals[:start]
		return e
	}
	e.edits = append(e.edits, edit{key: key, start: int32(start), end: int32(len(e.vals))})
	return e
}

// nextHolds reports whether the entry of raw right after the value last
// read (e.after) is key with the encoded value val. That is where an
// enrichment finds the field it sets (the decoders put user after uid,
// say), so a Set to the value the event has costs one comparison, not a
// scan; a field elsewhere, or an equal value encoded differently, is
// set as usual. Msgpack values delimit themselves, so a well-formed val
// that prefixes the bytes there is the whole value. (A map that holds the
// key twice, which no decoder makes, keeps its first entry then, where a
// SET would have replaced it.)
func (e *Event) nextHolds(key string, val []byte) bool {
	b, i := e.raw, e.after
	if i >= len(b) || b[i] != 0xa0|byte(len(key)) || len(key) > 31 {
		return false
	}
	ke := i + 1 + len(key)
	return ke+len(val) <= len(b) && string(b[i+1:ke]) == key && string(b[ke:ke+len(val)]) == string(val)
}

// appendAny encodes the Go value v for Set.
func appendAny(dst []byte, v any, key string) []byte {
	switch x := v.(type) {
	case nil:
		return codec.AppendNil(dst)
	case bool:
		return codec.AppendBool(dst, x)
	case int:
		return codec.AppendInt(dst, int64(x))
	case int8:
		return codec.AppendInt(dst, int64(x))
	case int16:
		return codec.AppendInt(dst, int64(x))
	case int32:
		return codec.AppendInt(dst, int64(x))
	case int64:
		return codec.AppendInt(dst, x)
	case uint:
		return codec.AppendUint(dst, uint64(x))
	case uint8:
		return codec.AppendUint(dst, uint64(x))
	case uint16:
		return codec.AppendUint(dst, uint64(x))
	case uint32:
		return codec.AppendUint(dst, uint64(x))
	case uint64:
		return codec.AppendUint(dst, x)
	case uintptr:
		return codec.AppendUint(dst, uint64(x))
	case float32:
		return codec.AppendFloat64(dst, float64(x))
	case float64:
		return codec.AppendFloat64(dst, x)
	case string:
		return codec.AppendString(dst, x)
	case []byte:
		return codec.AppendBytes(dst, x)
	case []string:
		dst = codec.AppendArrayHeader(dst, len(x))
		for _, s := range x {
			dst = codec.AppendString(dst, s)
		}
		return dst
	case time.Time:
		return codec.AppendString(dst, x.UTC().Format(time.RFC3339Nano))
	case time.Duration:
		return codec.AppendInt(dst, int64(x))
	case Value:
		if len(x.raw) == 0 || skip(x.raw, 0) != len(x.raw) {
			panic(fmt.Sprintf("sluice: Set %q: value is not one well-formed msgpack value", key))
		}
		return append(dst, x.raw...)
	case []any:
		dst = codec.AppendArrayHeader(dst, len(x))
		for _, el := range x {
			dst = appendAny(dst, el, key)
		}
		return dst
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = codec.AppendMapHeader(dst, len(x))
		for _, k := range keys {
			dst = codec.AppendString(dst, k)
			dst = appendAny(dst, x[k], key)
		}
		return dst
	}
	panic(fmt.Sprintf("sluice: Set %q: cannot encode a %T", key, v))
}

// Clone returns a copy of the event with its changes, to emit it more than
// once with different changes (flat-map). The copy is derived from the same
// input and valid as long as the original.
func (e *Event) Clone() *Event {
	c := current.newEvent()
	c.raw, c.index, c.gen = e.raw, e.index, e.gen
	c.edits = append(c.edits, e.edits...)
	c.vals = append(c.vals, e.vals...)
	return c
}

// appendEncoded appends the event's map with its changes applied: fields
// set on existing keys keep their position, deleted ones go, and new ones
// follow in the order they were last set. Unchanged runs of fields are
// copied with one append each, so adding a field costs one scan of the
// event and one copy.
func (e *Event) appendEncoded(dst []byte) ([]byte, error) {
	if len(e.edits) == 0 {
		if e.raw == nil {
			return codec.AppendMapHeader(dst, 0), nil
		}
		return append(dst, e.raw...), nil
	}
	if out, ok := e.appendAdded(dst); ok {
		return out, nil
	}
	if out, ok := e.appendReplaced(dst); ok {
		return out, nil
	}
	// Built even for an event made by NewEvent (an empty index): a reused
	// arena slot still holds the index of the event it held before.
	if e.buildIndex(); e.raw != nil && !e.ixOK {
		return dst, fmt.Errorf("change event %d: it is not a well-formed msgpack map", e.index)
	}
	// act[i] is what happens to entry i: -1 kept, -2 deleted, j replaced by
	// edit j. adds are the edits of keys the event does not have.
	e.act = slices.Grow(e.act[:0], len(e.ix))[:len(e.ix)]
	for i := range e.act {
		e.act[i] = -1
	}
	e.adds = e.adds[:0]
	count := len(e.ix)
	for j := range e.edits {
		ed := &e.edits[j]
		if !e.finalEdit(j) {
			continue
		}
		pos := e.rawIndexOf(ed.key)
		switch {
		case pos >= 0 && ed.end < 0:
			e.act[pos] = -2
			count--
		case pos >= 0:
			e.act[pos] = int32(j)
		case ed.end >= 0:
			e.adds = append(e.adds, int32(j))
			count++
		}
	}
	dst = codec.AppendMapHeader(dst, count)
	run := e.first // start of the pending run of unchanged entries
	for i, a := range e.act {
		if a == -1 {
			continue
		}
		start := e.first
		if i > 0 {
			start = int(e.ix[i-1].valEnd)
		}
		dst = append(dst, e.raw[run:start]...)
		if a >= 0 {
			ed := &e.edits[a]
			dst = append(dst, e.raw[start:e.ix[i].keyEnd]...)
			dst = append(dst, e.vals[ed.start:ed.end]...)
		}
		run = int(e.ix[i].valEnd)
	}
	if n := len(e.ix); n > 0 {
		dst = append(dst, e.raw[run:e.ix[n-1].valEnd]...)
	}
	for _, j := range e.adds {
		ed := &e.edits[j]
		dst = codec.AppendString(dst, ed.key)
		dst = append(dst, e.vals[ed.start:ed.end]...)
	}
	return dst, nil
}

// appendAdded is appendEncoded's fast path for the commonest change, adding
// fields the event does not have (enrichment): one scan per new key, then
// the whole body copied at once. ok is false when an edit deletes or
// replaces a field (or raw is malformed), for the general path.
func (e *Event) appendAdded(dst []byte) ([]byte, bool) {
	n, first := 0, 0
	if e.raw != nil {
		if n, first = mapHeader(e.raw, 0); first < 0 {
			return dst, false
		}
	}
	adds := 0
	for j := range e.edits {
		ed := &e.edits[j]
		if ed.end < 0 {
			return dst, false
		}
		if !e.finalEdit(j) {
			continue
		}
		// A miss scans the whole map: its end also proves the map
		// well-formed, so the body can be copied as it is.
		if e.raw != nil {
			if s, end := findKey(e.raw, ed.key); s >= 0 || end != len(e.raw) {
				return dst, false
			}
		}
		adds++
	}
	dst = codec.AppendMapHeader(dst, n+adds)
	dst = append(dst, e.raw[first:]...)
	for j := range e.edits {
		if ed := &e.edits[j]; e.finalEdit(j) {
			dst = codec.AppendString(dst, ed.key)
			dst = append(dst, e.vals[ed.start:ed.end]...)
		}
	}
	return dst, true
}

// appendReplaced is appendEncoded's fast path for one field set to a new
// value where the event has it (an enrichment that overwrites): the entries
// around the old value are copied as they are, in one scan and two copies.
// ok is false for anything else, for the general path.
func (e *Event) appendReplaced(dst []byte) ([]byte, bool) {
	if e.raw == nil {
		return dst, false
	}
	var ed *edit
	for j := range e.edits {
		if !e.finalEdit(j) {
			continue
		}
		if ed != nil || e.edits[j].end < 0 {
			return dst, false // more than one field changed, or a delete
		}
		ed = &e.edits[j]
	}
	if ed == nil {
		return dst, false
	}
	s, end := findKey(e.raw, ed.key)
	if s < 0 {
		return dst, false
	}
	// The input is a well-formed map (the host hands stages only those),
	// so what surrounds the value is copied without a check.
	dst = append(dst, e.raw[:s]...)
	dst = append(dst, e.vals[ed.start:ed.end]...)
	return append(dst, e.raw[end:]...), true
}

// setOnly reports whether the event's changes are fields set, none
// deleted: what a SET entry says (the input with these fields set, in
// place where it has them, after its fields where not).
func (e *Event) setOnly() bool {
	if len(e.edits) == 0 {
		return false
	}
	for j := range e.edits {
		if e.edits[j].end < 0 {
			return false
		}
	}
	return true
}

// appendSetFields appends the SET fields map of an event whose changes
// are all sets: the last value of each key, in the order the keys were
// last set (the order appendEncoded adds them in).
func (e *Event) appendSetFields(dst []byte) []byte {
	n := 0
	for j := range e.edits {
		if e.finalEdit(j) {
			n++
		}
	}
	dst = codec.AppendMapHeader(dst, n)
	for j := range e.edits {
		if ed := &e.edits[j]; e.finalEdit(j) {
			dst = codec.AppendString(dst, ed.key)
			dst = append(dst, e.vals[ed.start:ed.end]...)
		}
	}
	return dst
}

// finalEdit reports whether edit j is the last one for its key.
func (e *Event) finalEdit(j int) bool {
	for k := j + 1; k < len(e.edits); k++ {
		if e.edits[k].key == e.edits[j].key {
			return false
		}
	}
	return true
}

// rawIndexOf returns the index in ix of the entry with a str key equal to
// key, or -1. The search starts after the entry found last and wraps
// around: handlers tend to read fields in the order events hold them, and
// then each lookup costs a comparison or two instead of a scan.
func (e *Event) rawIndexOf(key string) int {
	n := len(e.ix)
	for k, i := 0, e.cursor; k < n; k, i = k+1, i+1 {
		if i >= n {
			i = 0
		}
		en := &e.ix[i]
		if int(en.keyEnd-en.keyStart) == len(key) && en.strKey && string(e.raw[en.keyStart:en.keyEnd]) == key {
			e.cursor = i + 1
			return i
		}
	}
	return -1
}
