package sluice

// StringSet is a set of strings to test event fields against without
// allocating: set.Has(ev.StringBytes("comm")). Strings are bucketed by
// length and compared directly; buckets that grow large fall back to a
// map. Build it once (OnInit) and only read it afterwards.
type StringSet struct {
	byLen [32][]string // short strings by length
	big   map[string]struct{}
}

// bucketLimit is the size past which a bucket of equal-length strings is
// kept in the map instead.
const bucketLimit = 8

// NewStringSet returns a set holding items.
func NewStringSet(items ...string) *StringSet {
	s := &StringSet{}
	for _, it := range items {
		s.Add(it)
	}
	return s
}

// Add adds s to the set.
func (s *StringSet) Add(x string) {
	if s.Has([]byte(x)) {
		return
	}
	if n := len(x); n < len(s.byLen) && len(s.byLen[n]) < bucketLimit {
		s.byLen[n] = append(s.byLen[n], x)
		return
	}
	if s.big == nil {
		s.big = make(map[string]struct{})
	}
	s.big[x] = struct{}{}
}

// Has reports whether b is in the set.
func (s *StringSet) Has(b []byte) bool {
	if n := len(b); n < len(s.byLen) {
		for _, x := range s.byLen[n] {
			if string(b) == x {
				return true
			}
		}
	}
	if s.big == nil {
		return false
	}
	_, ok := s.big[string(b)]
	return ok
}

// Len returns the number of strings in the set.
func (s *StringSet) Len() int {
	n := len(s.big)
	for _, b := range s.byLen {
		n += len(b)
	}
	return n
}
