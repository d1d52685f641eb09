package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/termsafe"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// StdoutOptions configure a Stdout sink.
type StdoutOptions struct {
	// Format is "json" (one object per line, the default) or "table".
	Format string
	// Schemas are the schemas of the streams feeding the sink, known from
	// the config. With exactly one, the table has a column per field; with
	// several, it has common columns and the rest as key=value details.
	Schemas []*pipeline.Schema
	// Sort orders the rows of each snapshot (iterators, toppers) in table
	// output; none keeps the gadget's order.
	Sort []SortKey
	// MaxRows shows at most this many rows of each snapshot in table
	// output; 0 shows all.
	MaxRows int
	// Redraw clears the screen before each snapshot in table output, so a
	// terminal shows the latest one in place, as top does.
	Redraw bool
}

// Stdout writes events to a terminal or pipe. It is safe for concurrent use.
type Stdout struct {
	name   string
	format string
	w      io.Writer
	table  *tableLayout
	frames *framer // table output of snapshot events

	mu         sync.Mutex
	buf        []byte
	headerDone bool
}

var _ pipeline.Sink = (*Stdout)(nil)

// NewStdout returns a sink writing to w.
func NewStdout(name string, w io.Writer, opts StdoutOptions) (*Stdout, error) {
	s := &Stdout{name: name, format: opts.Format, w: w}
	switch opts.Format {
	case "", "json":
		s.format = "json"
	case "table":
		if err := checkSortKeys(opts.Schemas, opts.Sort); err != nil {
			return nil, fmt.Errorf("stdout sink %q: %w", name, err)
		}
		s.table = newTableLayout(opts.Schemas)
		s.frames = newFramer(opts)
	default:
		return nil, fmt.Errorf("stdout sink %q: unknown format %q (want json or table)", name, opts.Format)
	}
	return s, nil
}

// Name returns the sink's config name.
func (s *Stdout) Name() string { return s.name }

// Write writes one batch with a single write call.
func (s *Stdout) Write(_ context.Context, batch []pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := s.buf[:0]
	var firstErr error
	for i := range batch {
		ev := &batch[i]
		var err error
		if s.table != nil && isSnapshotEvent(ev) {
			n := len(buf)
			if buf, err = s.frames.add(buf, ev); len(buf) > n {
				s.headerDone = false // rows of other streams get their header again
			}
		} else if s.table != nil {
			if !s.headerDone {
				buf = s.table.appendHeader(buf)
				s.headerDone = true
			}
			buf, err = s.table.appendRow(buf, ev)
		} else {
			start := len(buf)
			buf, err = codec.AppendJSON(buf, ev.Data)
			if err != nil {
				buf = buf[:start]
			} else {
				buf = append(buf, '\n')
			}
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("stdout sink %q: render event seq %d of %q: %w", s.name, ev.Seq, ev.Source, err)
		}
	}
	s.buf = buf
	if _, err := s.w.Write(buf); err != nil {
		return fmt.Errorf("stdout sink %q: write: %w", s.name, err)
	}
	return firstErr
}

// Close draws the snapshots still incomplete (rows a stage dropped never
// come); everything else was written by Write.
func (s *Stdout) Close(context.Context) error {
	if s.frames == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	buf, err := s.frames.flush(s.buf[:0])
	if len(buf) > 0 {
		if _, werr := s.w.Write(buf); werr != nil && err == nil {
			err = fmt.Errorf("stdout sink %q: write: %w", s.name, werr)
		}
	}
	return err
}

// tableLayout decides the table's columns.
type tableLayout struct {
	columns []column
	details bool // append the remaining fields as key=value
}

type column struct {
	title string
	key   string
	width int
}

const maxColumnWidth = 40

// fieldsHiddenInTable are envelope keys and companions a terminal reader
// does not need in every row; JSON output keeps them all.
func hiddenInTable(name string) bool {
	switch name {
	case "time", "host", "gadget", "seq", "timestamp", "mntns_id", "netns_id":
		return true
	}
	return strings.HasSuffix(name, "_raw") || strings.Contains(name, "_raw.")
}

func newTableLayout(schemas []*pipeline.Schema) *tableLayout {
	t := &tableLayout{columns: []column{{title: "TIME", key: "time", width: 12}}}
	if len(schemas) == 1 {
		// One stream: every row has the same source, so no column for it.
		for _, f := range schemas[0].Fields {
			if f.Hidden || hiddenInTable(f.Name) || f.Name == "source" {
				continue
			}
			w := max(f.Width, len(f.Name))
			w = min(w, maxColumnWidth)
			t.columns = append(t.columns, column{title: strings.ToUpper(f.Name), key: f.Name, width: w})
		}
		return t
	}
	t.columns = append(t.columns,
		column{title: "SOURCE", key: "source", width: 10},
		column{title: "GADGET", key: "gadget", width: 16},
		column{title: "PID", key: "pid", width: 7},
		column{title: "COMM", key: "comm", width: 16},
	)
	t.details = true
	return t
}

func (t *tableLayout) appendHeader(buf []byte) []byte {
	for i, c := range t.columns {
		buf = appendCell(buf, c.title, c.width, i == len(t.columns)-1 && !t.details)
	}
	if t.details {
		buf = append(buf, "DETAILS"...)
	}
	return append(bytes.TrimRight(buf, " "), '\n')
}

func (t *tableLayout) appendRow(buf []byte, ev *pipeline.Event) ([]byte, error) {
	if ev.Kind == pipeline.KindLoss || ev.Schema == nil {
		js, err := codec.AppendJSON(nil, ev.Data)
		if err != nil {
			return buf, err
		}
		buf = append(buf, "-- "...)
		buf = termsafe.Append(buf, string(js)) // JSON leaves DEL, C1 and bidi characters raw
		return append(buf, '\n'), nil
	}
	start := len(buf)
	for i, c := range t.columns {
		text, err := fieldText(ev.Data, c.key)
		if err != nil {
			return buf[:start], err
		}
		if c.key == "time" {
			text = clockTime(text)
		}
		buf = appendCell(buf, text, c.width, i == len(t.columns)-1 && !t.details)
	}
	// The rest of the event as key=value: in the details column when
	// several streams share the table, and after the last column for keys a
	// stage added beyond the schema (uid-to-user's user, say).
	first := true
	var fieldErr error
	err := codec.Each(ev.Data, func(key, value []byte) bool {
		name := string(key)
		if hiddenInTable(name) || t.isColumn(name) || (!t.details && ev.Schema.HasField(name)) || schemaHides(ev.Schema, name) {
			return true
		}
		text, err := valueText(value)
		if err != nil {
			fieldErr = err
			return false
		}
		if text == "" {
			return true // e.g. ret_error of a call that succeeded: noise in a row
		}
		if !first || !t.details {
			buf = append(buf, ' ')
		}
		first = false
		buf = termsafe.Append(buf, name) // keys come from events too
		buf = append(buf, '=')
		buf = append(buf, text...)
		return true
	})
	if err = errors.Join(err, fieldErr); err != nil {
		return buf[:start], err
	}
	return append(bytes.TrimRight(buf, " "), '\n'), nil
}

// schemaHides reports a field the stream's schema marks hidden (a raw
// number beside its rendering, a gadget's columns.hidden annotation).
func schemaHides(s *pipeline.Schema, name string) bool {
	for i := range s.Fields {
		if s.Fields[i].Name == name {
			return s.Fields[i].Hidden
		}
	}
	return false
}

func appendCell(buf []byte, text string, width int, last bool) []byte {
	if last {
		return append(buf, text...)
	}
	if len(text) > width {
		text = text[:width-1] + "…"
	}
	buf = append(buf, text...)
	for n := len([]rune(text)); n < width+1; n++ {
		buf = append(buf, ' ')
	}
	return buf
}

func (t *tableLayout) isColumn(name string) bool {
	for _, c := range t.columns {
		if c.key == name {
			return true
		}
	}
	return false
}

// fieldText renders one top-level field for a table cell: strings without
// quotes, everything else as its JSON text.
func fieldText(data []byte, key string) (string, error) {
	raw, ok := codec.Lookup(data, key)
	if !ok {
		return "", nil
	}
	return valueText(raw)
}

// valueText renders a value for the table. Strings lose their quotes, so
// their control characters are escaped (termsafe): a field of an event is
// whatever a process on the host chose, and the table goes to a terminal.
func valueText(raw []byte) (string, error) {
	js, err := codec.AppendJSON(nil, raw)
	if err != nil {
		return "", err
	}
	if len(js) > 0 && js[0] == '"' {
		var s string
		if err := json.Unmarshal(js, &s); err == nil {
			return termsafe.String(s), nil
		}
	}
	return termsafe.String(string(js)), nil
}

// clockTime shortens an RFC 3339 time to the local wall clock with
// milliseconds; rows of one run rarely need the date.
func clockTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.Local().Format("15:04:05.000")
}
