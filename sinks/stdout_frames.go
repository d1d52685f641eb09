package sinks

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/internal/termsafe"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// Snapshot outputs (a gadget's iterators and map iterators: toppers,
// histograms) are drawn as frames in table output: the rows of one
// snapshot together, sorted and cut to a number of rows, each histogram
// drawn as bars under its row, and, on a terminal, the screen cleared
// before each frame as `top` does. JSON output is unchanged.

// SortKey orders frame rows: by Field, descending when Desc. A field with a
// numeric companion Field_raw (a readable rendering beside its number) is
// ordered by the number.
type SortKey struct {
	Field string
	Desc  bool
}

// ParseSortKeys parses "-bytes,pid": comma-separated field names, each
// descending when prefixed with '-'.
func ParseSortKeys(s string) ([]SortKey, error) {
	var keys []SortKey
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k := SortKey{Field: strings.TrimPrefix(strings.TrimPrefix(part, "-"), "+"), Desc: strings.HasPrefix(part, "-")}
		if k.Field == "" {
			return nil, fmt.Errorf("sort key %q names no field", part)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// framer gathers snapshot rows per output until the snapshot is complete.
type framer struct {
	sort    []SortKey
	maxRows int
	redraw  bool
	pending map[frameKey]*frame
	order   []frameKey // outputs in the order they first appeared
	layouts map[*pipeline.Schema]*tableLayout
}

type frameKey struct {
	source string
	schema *pipeline.Schema
}

type frame struct {
	snapshot, rows uint64
	events         []*pipeline.Event
}

func newFramer(opts StdoutOptions) *framer {
	return &framer{sort: opts.Sort, maxRows: opts.MaxRows, redraw: opts.Redraw, pending: map[frameKey]*frame{}, layouts: map[*pipeline.Schema]*tableLayout{}}
}

// isSnapshotEvent tells events of a snapshot output.
func isSnapshotEvent(ev *pipeline.Event) bool {
	return ev.Kind() == pipeline.KindEvent && ev.Schema != nil && ev.Schema.HasField("snapshot_rows")
}

func snapshotOf(ev *pipeline.Event) (snapshot, rows uint64) {
	if raw, ok := codec.Lookup(ev.Data, "snapshot"); ok {
		snapshot, _, _ = codec.ReadUint(raw)
	}
	if raw, ok := codec.Lookup(ev.Data, "snapshot_rows"); ok {
		rows, _, _ = codec.ReadUint(raw)
	}
	return snapshot, rows
}

// add takes one row and appends the frames it completes to buf: its own
// snapshot when this row is its last, and an older snapshot of the same
// output that a newer one overtakes (rows a stage dropped never come).
func (f *framer) add(buf []byte, ev *pipeline.Event) ([]byte, error) {
	k := frameKey{ev.Source, ev.Schema}
	snap, rows := snapshotOf(ev)
	fr := f.pending[k]
	if fr != nil && fr.snapshot != snap {
		var err error
		if buf, err = f.draw(buf, k, fr); err != nil {
			return buf, err
		}
		fr = nil
	}
	if fr == nil {
		if _, seen := f.layouts[ev.Schema]; !seen {
			f.order = append(f.order, k)
		}
		fr = &frame{snapshot: snap, rows: rows}
		f.pending[k] = fr
	}
	fr.events = append(fr.events, ev)
	if uint64(len(fr.events)) >= fr.rows {
		return f.draw(buf, k, fr)
	}
	return buf, nil
}

// flush draws every incomplete frame (at close).
func (f *framer) flush(buf []byte) ([]byte, error) {
	for _, k := range f.order {
		if fr := f.pending[k]; fr != nil {
			var err error
			if buf, err = f.draw(buf, k, fr); err != nil {
				return buf, err
			}
		}
	}
	return buf, nil
}

func (f *framer) layout(s *pipeline.Schema) *tableLayout {
	l := f.layouts[s]
	if l == nil {
		l = newTableLayout([]*pipeline.Schema{s})
		// Histograms are drawn under their row, not as a column.
		l.columns = slices.DeleteFunc(l.columns, func(c column) bool { return histogramField(s, c.key) != nil })
		f.layouts[s] = l
	}
	return l
}

func histogramField(s *pipeline.Schema, name string) *pipeline.Field {
	for i := range s.Fields {
		if s.Fields[i].Name == name && s.Fields[i].Histogram != "" {
			return &s.Fields[i]
		}
	}
	return nil
}

func (f *framer) draw(buf []byte, k frameKey, fr *frame) ([]byte, error) {
	delete(f.pending, k)
	if f.redraw {
		buf = append(buf, "\x1b[H\x1b[2J"...) // home, clear: a frame replaces the last
	}
	events := fr.events
	if err := sortRows(events, sortKeysFor(k.schema, f.sort)); err != nil {
		return buf, err
	}
	more := 0
	if f.maxRows > 0 && len(events) > f.maxRows {
		more = len(events) - f.maxRows
		events = events[:f.maxRows]
	}
	when := ""
	if raw, ok := codec.Lookup(events[0].Data, "time"); ok {
		if s, _, err := codec.ReadString(raw); err == nil {
			when = termsafe.String(clockTime(string(s))) // an unparsable time is the event's text
		}
	}
	buf = fmt.Appendf(buf, "-- %s %s: snapshot %d, %d rows at %s\n", k.source, k.schema.Type, fr.snapshot, len(fr.events), when)
	l := f.layout(k.schema)
	buf = l.appendHeader(buf)
	var err error
	for _, ev := range events {
		if buf, err = l.appendRow(buf, ev); err != nil {
			return buf, err
		}
		for _, field := range k.schema.Fields {
			if field.Histogram == "" {
				continue
			}
			if raw, ok := codec.Lookup(ev.Data, field.Name); ok {
				if buf, err = appendHistogram(buf, field, raw); err != nil {
					return buf, err
				}
			}
		}
	}
	if more > 0 {
		buf = fmt.Appendf(buf, "-- %d more rows (--max-rows %d)\n", more, f.maxRows)
	}
	return buf, nil
}

// sortKeysFor keeps the sort keys an output has the field of: a gadget's
// outputs differ, and a key meant for one does not apply to the others.
func sortKeysFor(s *pipeline.Schema, keys []SortKey) []SortKey {
	var out []SortKey
	for _, k := range keys {
		if s.HasField(k.Field) || s.HasField(k.Field+"_raw") {
			out = append(out, k)
		}
	}
	return out
}

// checkSortKeys fails for a sort key no snapshot output has, listing the
// fields they have.
func checkSortKeys(schemas []*pipeline.Schema, keys []SortKey) error {
	var snapshots []*pipeline.Schema
	for _, s := range schemas {
		if s != nil && s.HasField("snapshot_rows") {
			snapshots = append(snapshots, s)
		}
	}
	if len(snapshots) == 0 {
		return nil // nothing to sort, or outputs not known yet
	}
	for _, k := range keys {
		found := false
		for _, s := range snapshots {
			found = found || len(sortKeysFor(s, []SortKey{k})) > 0
		}
		if !found {
			var names []string
			for _, s := range snapshots {
				for _, f := range s.Fields {
					if !f.Hidden && !slices.Contains(envelopeFields, f.Name) {
						names = append(names, f.Name)
					}
				}
			}
			return fmt.Errorf("sort by %q: no snapshot output has that field (they have %s)", k.Field, strings.Join(names, ", "))
		}
	}
	return nil
}

var envelopeFields = []string{"time", "host", "source", "gadget", "seq", "snapshot", "snapshot_rows"}

// sortRows orders a frame's rows by the sort keys; rows equal on every key
// keep their order.
func sortRows(events []*pipeline.Event, keys []SortKey) error {
	if len(keys) == 0 {
		return nil
	}
	var firstErr error
	slices.SortStableFunc(events, func(a, b *pipeline.Event) int {
		for _, k := range keys {
			c, err := compareField(a, b, k.Field)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if k.Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	return firstErr
}

// sortValue is a field's value for ordering: a number when it has one.
type sortValue struct {
	num     float64
	text    string
	numeric bool
	missing bool
}

func fieldSortValue(ev *pipeline.Event, name string) sortValue {
	// A readable rendering ("10 kB") sorts by its number.
	if raw, ok := codec.Lookup(ev.Data, name+"_raw"); ok {
		if v, _, err := codec.ReadFloat64(raw); err == nil {
			return sortValue{num: v, numeric: true}
		}
	}
	raw, ok := codec.Lookup(ev.Data, name)
	if !ok {
		return sortValue{missing: true}
	}
	if v, _, err := codec.ReadFloat64(raw); err == nil {
		return sortValue{num: v, numeric: true}
	}
	if b, _, err := codec.ReadBool(raw); err == nil {
		if b {
			return sortValue{num: 1, numeric: true}
		}
		return sortValue{numeric: true}
	}
	if s, _, err := codec.ReadString(raw); err == nil {
		return sortValue{text: string(s)}
	}
	js, _ := codec.AppendJSON(nil, raw)
	return sortValue{text: string(js)}
}

func compareField(a, b *pipeline.Event, name string) (int, error) {
	va, vb := fieldSortValue(a, name), fieldSortValue(b, name)
	if va.missing && vb.missing {
		return 0, fmt.Errorf("sort by %q: no such field", name)
	}
	switch {
	case va.missing:
		return -1, nil
	case vb.missing:
		return 1, nil
	case va.numeric && vb.numeric:
		return cmp.Compare(va.num, vb.num), nil
	}
	return strings.Compare(va.text, vb.text), nil
}

// appendHistogram draws a histogram field as bcc and Inspektor Gadget do:
// one line per bucket up to the last non-empty one, with a bar of 40 stars
// at the largest count.
func appendHistogram(buf []byte, f pipeline.Field, raw []byte) ([]byte, error) {
	n, rest, err := codec.ReadArrayHeader(raw)
	if err != nil {
		return buf, fmt.Errorf("histogram %s: %w", f.Name, err)
	}
	counts := make([]uint64, 0, n)
	for i := 0; i < n; i++ {
		var v uint64
		if v, rest, err = codec.ReadUint(rest); err != nil {
			return buf, fmt.Errorf("histogram %s: %w", f.Name, err)
		}
		counts = append(counts, v)
	}
	last, peak := -1, uint64(0)
	for i, c := range counts {
		if c > 0 {
			last = i
		}
		peak = max(peak, c)
	}
	unit := f.Unit
	if unit == "" {
		unit = f.Name
	}
	if last < 0 {
		return fmt.Appendf(buf, "%24s : no samples\n", unit), nil
	}
	buf = fmt.Appendf(buf, "%24s : count    distribution\n", unit)
	const stars = 40
	for i := 0; i <= last; i++ {
		lo, hi := uint64(i), uint64(i)
		if f.Histogram == "log2" {
			lo, hi = uint64(1)<<i, uint64(1)<<(i+1)-1
			if i == 0 {
				lo = 0
			}
		}
		bar := int(counts[i] * stars / peak)
		buf = fmt.Appendf(buf, "%10d -> %-10d : %-8d |%s%s|\n", lo, hi, counts[i], strings.Repeat("*", bar), strings.Repeat(" ", stars-bar))
	}
	return buf, nil
}
