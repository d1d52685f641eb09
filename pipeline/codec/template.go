package codec

// An Encoder's template is the shape of the events of one stream: the
// top-level entries of the last events, in order, each either constant
// (key and value the same bytes in every event seen: host, source,
// gadget, pid, comm, ...) or variable (the key the same, the value not:
// times, sequence numbers). It is compiled into runs: the msgpack bytes
// of consecutive constant entries and of the key of the variable entry
// after them, which an event must hold byte for byte, with their JSON
// text; and the variable values between them, transcoded one by one. An
// event that matches is then a few comparisons and copies of tens of
// bytes and a transcoding of its variable values, instead of an entry
// by entry walk (the synthetic gadget's event: 8 runs and 7 values
// rather than 15 entries).
//
// The JSON of a run is what AppendJSON makes of its bytes (it is a
// function of the bytes alone), so the output is the same. An event that
// does not match is transcoded entry by entry and compared with the
// template: values that differ make their entries variable; a different
// key or number of entries makes the event the new template, all of its
// entries constant until events show otherwise.

// Bounds of a template, which bound an Encoder's memory whatever the
// events hold: larger events are transcoded entry by entry.
const (
	maxTemplateEntries = 64
	maxTemplateBytes   = 4096
)

// relearnBackoff is how many events a stream whose shape changed twice
// within relearnWindow events is transcoded entry by entry before a
// template is tried again: events of alternating shapes (several gadgets
// into one sink, optional fields) would otherwise cost a failed match and
// a relearning each.
const (
	relearnWindow  = 64
	relearnBackoff = 1024
)

type template struct {
	mp      []byte     // the msgpack map the template was learned from
	entries []tplEntry // its entries
	ops     []tplOp    // compiled from entries
	js      []byte     // the JSON of the runs
	// since counts events since the template was learned; off, events
	// to pass before using or learning one again; strays, the events of
	// another shape in a row.
	since, off, strays int
}

// tplEntry is one entry of the template's map: its key at
// mp[at:val], its value at mp[val:end].
type tplEntry struct {
	at, val, end int32
	variable     bool
}

// tplOp is a run, mp[from:to] to match and js[jsFrom:jsTo] to copy,
// and, with value set, the variable value after it to transcode.
//
// A variable value is often the same as the event before's: the times of
// a burst of events (a gadget's records of one call share a timestamp),
// a field that changes now and then. So the op keeps the last value it
// transcoded (lastMP, up to maxLastValue bytes) and its JSON (lastJS), and
// a value that is those bytes again is copied, not transcoded: msgpack is
// prefix-free, so bytes that start with a whole value are that value. A
// value that changed is not kept for the next lastSkip events, so that a
// value changing with every event (a sequence number) costs a comparison
// and a copy only once in lastSkip+1 events.
type tplOp struct {
	from, to, jsFrom, jsTo int32
	value                  bool
	skip                   uint8
	lastMP, lastJS         []byte
}

// Bounds of the value an op keeps, and the events a changed one is not kept.
const (
	maxLastValue = 48
	lastSkip     = 16
)

// append appends the JSON of the map b when b matches the template;
// else it returns dst as it was and false.
func (t *template) append(dst, b []byte) ([]byte, bool) {
	start, p := len(dst), 0
	for i := range t.ops {
		op := &t.ops[i]
		run := t.mp[op.from:op.to]
		if len(b)-p < len(run) || string(b[p:p+len(run)]) != string(run) {
			return dst[:start], false
		}
		dst = append(dst, t.js[op.jsFrom:op.jsTo]...)
		p += len(run)
		if op.value {
			if n := len(op.lastMP); n > 0 && len(b)-p >= n && string(b[p:p+n]) == string(op.lastMP) {
				dst = append(dst, op.lastJS...)
				p += n
				continue
			}
			from, js := p, len(dst)
			var ok bool
			if dst, p, ok = appendValue(dst, b, p); !ok {
				return dst[:start], false
			}
			switch {
			case op.skip > 0:
				op.skip--
			case p-from <= maxLastValue:
				if len(op.lastMP) > 0 {
					op.skip = lastSkip // it changed: a while before the next try
				}
				op.lastMP = append(op.lastMP[:0], b[from:p]...)
				op.lastJS = append(op.lastJS[:0], dst[js:]...)
			}
		}
	}
	return append(dst, '}'), true
}

// appendValue appends the JSON of the value at b[p] and returns the
// position after it, inlining the common values as appendMap does;
// false when the value is malformed or truncated.
func appendValue(dst, b []byte, p int) ([]byte, int, bool) {
	if p >= len(b) {
		return dst, p, false
	}
	switch c := b[p]; {
	case c <= 0x7f:
		return appendSmallUint(dst, c), p + 1, true
	case c&0xe0 == 0xa0:
		if to := p + 1 + int(c&0x1f); to <= len(b) {
			return appendStringIn(dst, b, p+1, to), to, true
		}
		return dst, p, false
	case c == 0xd9:
		if p+2 <= len(b) {
			if to := p + 2 + int(b[p+1]); to <= len(b) {
				return appendStringIn(dst, b, p+2, to), to, true
			}
		}
		return dst, p, false
	case c >= 0xcc && c <= 0xcf:
		if size := 1 << (c - 0xcc); p+1+size <= len(b) {
			return appendUint(dst, beUint(b[p+1:], size)), p + 1 + size, true
		}
		return dst, p, false
	case c >= 0xd0 && c <= 0xd3:
		if size := 1 << (c - 0xd0); p+1+size <= len(b) {
			v := beUint(b[p+1:], size)
			shift := 64 - 8*size // sign-extend from size bytes
			return appendInt(dst, int64(v<<shift)>>shift), p + 1 + size, true
		}
		return dst, p, false
	case c >= 0xe0:
		dst = append(dst, '-')
		return appendSmallUint(dst, byte(-int8(c))), p + 1, true
	}
	out, rest, err := appendJSON(dst, b[p:], 1)
	if err != nil {
		return dst, p, false
	}
	return out, len(b) - len(rest), true
}

// observe compares the map b, which AppendJSON transcoded without error,
// with the template: entries whose values differ become variable; a map
// of another shape becomes the template. It recompiles the template.
func (t *template) observe(b []byte) {
	n, rest, err := ReadMapHeader(b)
	if err != nil || n == 0 || n > maxTemplateEntries {
		t.reset()
		return
	}
	// The map's entries, checked against the template's as they come.
	var ends [2 * maxTemplateEntries]int32
	p := len(b) - len(rest)
	same := len(t.entries) == n && len(t.mp) >= p && string(b[:p]) == string(t.mp[:p])
	for i := range n {
		k, err := Skip(b[p:])
		if err != nil {
			t.reset()
			return
		}
		v, err := Skip(b[p+k:])
		if err != nil {
			t.reset()
			return
		}
		if p+k+v > maxTemplateBytes {
			t.reset()
			return
		}
		ends[2*i], ends[2*i+1] = int32(p+k), int32(p+k+v)
		if same {
			e := &t.entries[i]
			if string(b[p:p+k]) != string(t.mp[e.at:e.val]) {
				same = false // another key
			} else if !e.variable && string(b[p+k:p+k+v]) != string(t.mp[e.val:e.end]) {
				e.variable = true
			}
		}
		p += k + v
	}
	if !same {
		// One event of another shape among the stream's (a rare kind
		// of event, an optional field) is left to the entry by entry
		// path; a second in a row starts a new stream.
		if t.strays++; t.strays < 2 && len(t.ops) > 0 {
			return
		}
		t.learn(b[:p], ends[:2*n])
	}
	t.strays = 0
	t.compile()
}

// learn makes the map m, whose keys and values end at ends, the template,
// all of its entries constant. A stream whose shape keeps changing is
// left to the entry by entry path for a while.
func (t *template) learn(m []byte, ends []int32) {
	if len(t.mp) > 0 && t.since < relearnWindow {
		t.reset()
		t.off = relearnBackoff
		return
	}
	t.mp = append(t.mp[:0], m...)
	t.entries = t.entries[:0]
	at := int32(len(m))
	if len(ends) > 0 {
		// The first key starts after the map's header: the header is the
		// map's bytes before it.
		_, rest, _ := ReadMapHeader(m)
		at = int32(len(m) - len(rest))
	}
	for i := 0; i < len(ends); i += 2 {
		t.entries = append(t.entries, tplEntry{at: at, val: ends[i], end: ends[i+1]})
		at = ends[i+1]
	}
	t.since = 0
}

// compile turns the entries into runs and values, the runs' JSON made
// by the entry by entry transcoder. A template it cannot compile (a
// value too deep, which AppendJSON would have refused) is dropped.
func (t *template) compile() {
	t.ops, t.js = t.ops[:0], t.js[:0]
	if len(t.entries) == 0 {
		return
	}
	from, jsFrom := int32(0), int32(0) // of the run being built
	t.js = append(t.js, '{')
	for i, e := range t.entries {
		if i > 0 {
			t.js = append(t.js, ',')
		}
		var err error
		if t.js, _, err = appendKey(t.js, t.mp, int(e.at), 0); err != nil {
			t.reset()
			return
		}
		if !e.variable {
			if t.js, _, err = appendJSON(t.js, t.mp[e.val:e.end], 1); err != nil {
				t.reset()
				return
			}
			continue
		}
		t.ops = append(t.ops, tplOp{from: from, to: e.val, jsFrom: jsFrom, jsTo: int32(len(t.js)), value: true})
		from, jsFrom = e.end, int32(len(t.js))
	}
	if end := t.entries[len(t.entries)-1].end; from < end {
		t.ops = append(t.ops, tplOp{from: from, to: end, jsFrom: jsFrom, jsTo: int32(len(t.js))})
	}
}

// reset drops the template, keeping its buffers.
func (t *template) reset() {
	t.mp, t.entries, t.ops, t.js = t.mp[:0], t.entries[:0], t.ops[:0], t.js[:0]
	t.since = 0
}
