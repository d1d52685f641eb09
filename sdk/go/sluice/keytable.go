package sluice

import "unsafe"

// keyTable holds where one key's value lies in every event of the current
// batch, found by the host in one call (find_key, docs/stage-abi.md):
// in Go's Wasm code, scanning to the tenth field of each event costs a few
// hundred ns, the host call a fraction of that per event.
type keyTable struct {
	gen    uint32   // the call the table belongs to; another call: empty
	key    string   // the key, "" when the table is empty
	n      uint32   // the events offs covers, 0 when the table is empty
	offs   []uint32 // per event: value start, value end (find_key's pairs)
	builds int      // tables built in this call
}

// Tables are built from the first lookup of an event with at least
// minTableEvents events left in the batch (a host call costs about as much
// as scanning a few events), and at most maxTableBuilds times per call, so
// that a handler whose first key changes from event to event pays for a
// few host calls, not one per event.
const (
	minTableEvents = 4
	maxTableBuilds = 2
)

// findFirst is findKey for an event's first lookup: from the batch's key
// table when the key is in it (the test is small enough for Go to inline
// it into the getters), else findFirstSlow.
func (e *Event) findFirst(key string) (start, end int) {
	t := &current.keys
	if i := e.index; t.gen == e.gen && i < t.n && len(key) == len(t.key) && unsafe.StringData(key) == unsafe.StringData(t.key) {
		if vs, ve := t.offs[2*i], t.offs[2*i+1]; vs <= ve && ve <= uint32(len(e.raw)) {
			return int(vs), int(ve)
		}
	}
	return e.findFirstSlow(key)
}

// findFirstSlow builds the key table when the key is not in it and the
// batch is worth it, then answers from the table or by scanning.
func (e *Event) findFirstSlow(key string) (start, end int) {
	s := current
	t := &s.keys
	if t.gen != e.gen {
		t.gen, t.key, t.n, t.builds = e.gen, "", 0, 0
	}
	i := int(e.index)
	if e.raw != nil && e.index != noInput && i < s.batchN {
		if len(key) != len(t.key) || (unsafe.StringData(key) != unsafe.StringData(t.key) && key != t.key) {
			if t.builds >= maxTableBuilds || s.batchN-i < minTableEvents || len(key) == 0 || !s.buildTable(key) {
				return findKey(e.raw, key)
			}
		}
		if 2*i+1 < len(t.offs) {
			vs, ve := t.offs[2*i], t.offs[2*i+1]
			switch {
			case vs <= ve && ve <= uint32(len(e.raw)):
				return int(vs), int(ve)
			case vs == findKeyMissing && ve == findKeyMissing:
				return -1, -1
			case vs == findKeyMissing && ve <= uint32(len(e.raw)):
				return -1, int(ve)
			}
		}
	}
	return findKey(e.raw, key)
}

// findKeyMissing is find_key's offset for a missing key or malformed event.
const findKeyMissing = ^uint32(0)

// buildTable asks the host for key's value in every event of the batch.
func (s *stage) buildTable(key string) bool {
	t := &s.keys
	t.builds++
	n := s.batchN
	if cap(t.offs) < 2*n {
		t.offs = make([]uint32, 2*n)
	}
	t.offs = t.offs[:2*n]
	if hostFindKey(s.batch, key, t.offs) != n {
		t.key, t.n = "", 0
		return false
	}
	t.key, t.n = key, uint32(n)
	return true
}
