package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

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
	// Fields, when set, selects the keys shown and their order: the
	// table's columns (and nothing else), or the keys of each JSON object.
	// Keys an event lacks are left out of JSON and blank in a table.
	Fields []string
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

// Stdout writes events to a terminal or pipe. A reader that stops reading
// cannot hold it: each write runs in the sink's writer goroutine and Write
// returns when its context ends, the batch lost (counted by the pipeline);
// while that write is still blocked, later batches are refused at once
// (into a regular file, which has no reader to stall, Write writes itself,
// as the file sink does). A
// reader that goes away (EPIPE) fails the sink alone: it refuses every
// later batch, and the process is not killed by SIGPIPE. It is safe for
// concurrent use.
type Stdout struct {
	name   string
	format string
	w      io.Writer
	table  *tableLayout
	// keys are the JSON-encoded "key": prefixes of Fields, for JSON.
	keys   [][]byte
	fields []string
	frames *framer // table output of snapshot events

	// inline: w is a regular file, which no reader can stall (as the file
	// sink's), so Write writes it itself, without the writer goroutine's
	// two handoffs per batch.
	inline bool

	mu         sync.Mutex
	buf        []byte
	encs       encoders // JSON, with what they learned of the events before
	headerDone bool
	// The writer goroutine takes a buffer on writes and answers on done.
	writes   chan []byte
	done     chan error
	inFlight bool  // a write whose Write gave up waiting is still running
	broken   error // the reader is gone (EPIPE): nothing more can be written
	stopped  chan struct{}
	closed   bool
	// For Health, which must not wait for s.mu (a Write may hold it
	// while the reader does not read).
	brokenErr    atomic.Pointer[error]
	writingSince atomic.Int64 // unix ns of the write in progress; 0: none
}

var _ pipeline.Sink = (*Stdout)(nil)

// NewStdout returns a sink writing to w; its writer goroutine starts with
// the first Write and stops in Close. When w is the process's stdout or stderr, it makes a
// closed pipe there an error (EPIPE) instead of a fatal SIGPIPE, for the
// whole process.
func NewStdout(name string, w io.Writer, opts StdoutOptions) (*Stdout, error) {
	s := &Stdout{name: name, format: opts.Format, w: w, fields: opts.Fields}
	switch opts.Format {
	case "", "json":
		s.format = "json"
		for _, f := range opts.Fields {
			k, _ := json.Marshal(f)
			s.keys = append(s.keys, append(k, ':'))
		}
	case "table":
		if err := checkSortKeys(opts.Schemas, opts.Sort); err != nil {
			return nil, fmt.Errorf("stdout sink %q: %w", name, err)
		}
		s.table = newTableLayout(opts.Schemas)
		if len(opts.Fields) > 0 {
			s.table = fieldsLayout(opts.Fields, opts.Schemas)
		}
		s.frames = newFramer(opts)
	default:
		return nil, fmt.Errorf("stdout sink %q: unknown format %q (want json or table)", name, opts.Format)
	}
	if w == os.Stdout || w == os.Stderr {
		survivePipeClose()
	}
	if f, ok := w.(*os.File); ok {
		if info, err := f.Stat(); err == nil && info.Mode().IsRegular() {
			s.inline = true
		}
	}
	return s, nil
}

// survivePipeClose makes the Go runtime return EPIPE from a write to a
// closed pipe on stdout or stderr rather than kill the process: it does so
// once a handler for SIGPIPE is installed (os/signal). A handler, rather
// than ignoring the signal, keeps child processes' SIGPIPE at its default.
var survivePipeClose = sync.OnceFunc(func() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
})

// writer writes the buffers Write hands it until Close closes writes.
func (s *Stdout) writer() {
	defer close(s.stopped)
	for buf := range s.writes {
		s.writingSince.Store(time.Now().UnixNano())
		_, err := s.w.Write(buf)
		s.writingSince.Store(0)
		s.done <- err
	}
}

// Name returns the sink's config name.
func (s *Stdout) Name() string { return s.name }

// errBlocked is the error of a batch refused while an earlier write is
// still blocked.
var errBlocked = errors.New("an earlier write is still blocked: the reader does not read")

// Write renders one batch and writes it with a single write call, waiting
// at most until ctx ends. Safe for concurrent use.
func (s *Stdout) Write(ctx context.Context, batch []pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
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
		} else if s.keys != nil && ev.Kind() == pipeline.KindEvent {
			start := len(buf)
			buf, err = s.appendSelected(buf, ev.Data)
			if err != nil {
				buf = buf[:start]
			} else {
				buf = append(buf, '\n')
			}
		} else {
			start := len(buf)
			buf, err = s.encs.of(ev.Source).AppendJSON(buf, ev.Data)
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
	if err := s.writeLocked(ctx, buf); err != nil {
		return err
	}
	return firstErr
}

// appendSelected renders the selected keys of an event as a JSON object,
// in the order of Fields.
func (s *Stdout) appendSelected(buf, data []byte) ([]byte, error) {
	buf = append(buf, '{')
	first := true
	for i, f := range s.fields {
		raw, ok := codec.Lookup(data, f)
		if !ok {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, s.keys[i]...)
		var err error
		if buf, err = codec.AppendJSON(buf, raw); err != nil {
			return buf, err
		}
	}
	return append(buf, '}'), nil
}

// writableLocked says why nothing can be written now: the sink is closed,
// the reader went away, or an earlier write is still blocked. Callers
// hold s.mu.
func (s *Stdout) writableLocked() error {
	if s.closed {
		return fmt.Errorf("stdout sink %q: write after close", s.name)
	}
	if s.inFlight {
		select {
		case err := <-s.done:
			s.inFlight = false
			s.noteWriteError(err)
		default:
			return fmt.Errorf("stdout sink %q: %w", s.name, errBlocked)
		}
	}
	if s.broken != nil {
		return fmt.Errorf("stdout sink %q: %w", s.name, s.broken)
	}
	return nil
}

// writeLocked hands buf to the writer goroutine (started at the first
// write) and waits for the write, at most until ctx ends; then buf stays
// with the writer. Into a regular file it writes buf itself. Callers hold
// s.mu.
func (s *Stdout) writeLocked(ctx context.Context, buf []byte) error {
	if err := s.writableLocked(); err != nil {
		return err
	}
	if s.inline {
		s.writingSince.Store(time.Now().UnixNano())
		_, err := s.w.Write(buf)
		s.writingSince.Store(0)
		if err != nil {
			return fmt.Errorf("stdout sink %q: write: %w", s.name, err)
		}
		return nil
	}
	if s.writes == nil {
		s.writes, s.done, s.stopped = make(chan []byte), make(chan error, 1), make(chan struct{})
		go s.writer()
	}
	s.writes <- buf
	select {
	case err := <-s.done:
		if err != nil {
			s.noteWriteError(err)
			return fmt.Errorf("stdout sink %q: write: %w", s.name, err)
		}
	case <-ctx.Done():
		// The buffer stays with the writer; the next batch gets a new one.
		s.inFlight, s.buf = true, nil
		return fmt.Errorf("stdout sink %q: write: %w (%w)", s.name, errBlocked, ctx.Err())
	}
	return nil
}

// Health reports a reader that went away, or one that has not taken a
// write for a second or more: the sink's queue then fills or drops. It
// implements pipeline.HealthReporter. Safe for concurrent use; it never
// waits for a write.
func (s *Stdout) Health() error {
	if err := s.brokenErr.Load(); err != nil {
		return fmt.Errorf("%w; events are dropped", *err)
	}
	if start := s.writingSince.Load(); start != 0 {
		if d := time.Since(time.Unix(0, start)); d >= time.Second {
			return fmt.Errorf("a write has waited %s: the reader does not read", d.Round(time.Second))
		}
	}
	return nil
}

var _ pipeline.HealthReporter = (*Stdout)(nil)

// noteWriteError marks the sink broken when the reader has gone away.
func (s *Stdout) noteWriteError(err error) {
	if errors.Is(err, syscall.EPIPE) {
		s.broken = fmt.Errorf("the reader closed the pipe: %w", err)
		s.brokenErr.Store(&s.broken)
	}
}

// Close draws the snapshots still incomplete (rows a stage dropped never
// come; everything else was written by Write) and stops the writer
// goroutine. Every Write is complete when it returns, except one that gave
// up on a blocked reader: Close waits for that write within ctx, and
// returns an error if it is still blocked then (its goroutine ends when the
// write does, or with the process: a blocking write cannot be
// interrupted).
func (s *Stdout) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var err error
	if s.frames != nil {
		var buf []byte
		if buf, err = s.frames.flush(s.buf[:0]); len(buf) > 0 {
			if werr := s.writeLocked(ctx, buf); werr != nil && err == nil {
				err = werr
			}
		}
	}
	s.closed = true
	if s.writes == nil {
		return err // never written to
	}
	close(s.writes)
	if s.inFlight {
		select {
		case <-s.done:
			s.inFlight = false
		case <-ctx.Done():
			return errors.Join(err, fmt.Errorf("stdout sink %q: close: a write is still blocked: the reader does not read", s.name))
		}
	}
	<-s.stopped
	return err
}

// tableLayout decides the table's columns.
type tableLayout struct {
	columns []column
	details bool // append the remaining fields as key=value
	fixed   bool // the columns are all there is: no key=value tail
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

// fieldsLayout is the table of exactly the given fields, sized from the
// schemas where they name them.
func fieldsLayout(fields []string, schemas []*pipeline.Schema) *tableLayout {
	t := &tableLayout{fixed: true}
	for _, name := range fields {
		w := len(name)
		for _, sc := range schemas {
			for _, f := range sc.Fields {
				if f.Name == name {
					w = max(w, f.Width)
				}
			}
		}
		if name == "time" {
			w = 12
		}
		t.columns = append(t.columns, column{title: strings.ToUpper(name), key: name, width: min(w, maxColumnWidth)})
	}
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
	if ev.Kind() == pipeline.KindLoss || ev.Schema == nil {
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
	if t.fixed {
		return append(bytes.TrimRight(buf, " "), '\n'), nil
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
	// A string (most cells) as it is: its JSON form decoded back is the
	// same text, for two passes over it and an allocation per cell.
	// Invalid UTF-8 takes the JSON path, which replaces it as JSON does.
	if len(raw) > 0 && (raw[0]&0xe0 == 0xa0 || raw[0] == 0xd9 || raw[0] == 0xda || raw[0] == 0xdb) {
		if s, _, err := codec.ReadString(raw); err == nil && utf8.Valid(s) {
			return termsafe.String(string(s)), nil
		}
	}
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
