package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

var testSchema = &Schema{Gadget: "trace_test", Type: "event"}

// mkEvents returns n events of source numbered from seq first, each with
// dataLen bytes of Data.
func mkEvents(source string, first uint64, n, dataLen int) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = Event{Data: make([]byte, dataLen), Schema: testSchema, Source: source, Seq: first + uint64(i)}
	}
	return out
}

func seqs(evs []Event) []uint64 {
	out := make([]uint64, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.Seq)
	}
	return out
}

func seqRange(first, last uint64) []uint64 {
	var out []uint64
	for s := first; s <= last; s++ {
		out = append(out, s)
	}
	return out
}

// decodeLoss decodes a loss record's Data into a map with integers widened
// to int64/uint64.
func decodeLoss(t *testing.T, ev Event) map[string]any {
	t.Helper()
	if ev.Kind() != KindLoss {
		t.Fatalf("event kind = %v, want loss", ev.Kind())
	}
	dec := msgpack.NewDecoder(bytes.NewReader(ev.Data))
	dec.UseLooseInterfaceDecoding(true)
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode loss record: %v", err)
	}
	return m
}

// lossSummary is the part of a loss record tests compare; SeqFirst and
// SeqLast are 0 when the record says nil.
type lossSummary struct {
	Source, Gadget, Component, Reason string
	Count, SeqFirst, SeqLast          uint64
}

func summarize(t *testing.T, ev Event) lossSummary {
	t.Helper()
	m := decodeLoss(t, ev)
	u := func(k string) uint64 {
		switch v := m[k].(type) {
		case nil:
			return 0
		case uint64:
			return v
		case int64:
			return uint64(v)
		}
		t.Fatalf("loss record key %s = %#v, want an integer or nil", k, m[k])
		return 0
	}
	s := func(k string) string {
		v, ok := m[k].(string)
		if !ok {
			t.Fatalf("loss record key %s = %#v, want a string", k, m[k])
		}
		return v
	}
	return lossSummary{
		Source: s("source"), Gadget: s("gadget"), Component: s("component"), Reason: s("reason"),
		Count: u("count"), SeqFirst: u("seq_first"), SeqLast: u("seq_last"),
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkInvariant asserts received = sent + dropped for every component.
func checkInvariant(t *testing.T, reg *Registry, components ...[2]string) {
	t.Helper()
	for _, c := range components {
		m := reg.Component(c[0], c[1])
		r, s, d := m.Received.Value(), m.Sent.Value(), m.DroppedTotal()
		if r != s+d {
			t.Errorf("%s/%s: received %d != sent %d + dropped %d", c[0], c[1], r, s, d)
		}
	}
}

// genSource emits n events in batches, then waits for cancellation (or
// returns at once when finite is set).
type genSource struct {
	name    string
	n       int
	batch   int
	dataLen int
	finite  bool

	done    chan struct{} // closed once all events are emitted
	emitDur time.Duration // time to emit all events; read after done
}

func newGen(name string, n, batch int) *genSource {
	return &genSource{name: name, n: n, batch: batch, dataLen: 32, done: make(chan struct{})}
}

func (g *genSource) Name() string { return g.name }

func (g *genSource) Run(ctx context.Context, out Emitter) error {
	start := time.Now()
	seq := uint64(1)
	buf := make([]Event, 0, g.batch)
	for emitted := 0; emitted < g.n; {
		k := min(g.batch, g.n-emitted)
		buf = buf[:0]
		for range k {
			buf = append(buf, Event{Data: make([]byte, g.dataLen), Schema: testSchema, Source: g.name, Seq: seq})
			seq++
		}
		if err := out.Emit(ctx, buf); err != nil {
			return fmt.Errorf("emit: %w", err)
		}
		emitted += k
	}
	g.emitDur = time.Since(start)
	close(g.done)
	if g.finite {
		return nil
	}
	<-ctx.Done()
	return nil
}

// recSink records what it is given. delay is slept per Write (honouring
// ctx); fail, when set, decides per batch whether Write fails.
type recSink struct {
	name  string
	delay time.Duration
	fail  func(batch []Event) error

	mu            sync.Mutex
	events        []Event
	writes        int
	writeAfterEnd bool
	closed        int
	closeDeadline time.Time
	closeErr      error // ctx.Err() when Close was called
}

func (s *recSink) Name() string { return s.name }

func (s *recSink) Write(ctx context.Context, batch []Event) error {
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return fmt.Errorf("write %d events: %w", len(batch), ctx.Err())
		}
	}
	if s.fail != nil {
		if err := s.fail(batch); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed > 0 {
		s.writeAfterEnd = true
	}
	s.writes++
	s.events = append(s.events, batch...)
	return nil
}

func (s *recSink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	s.closeDeadline, _ = ctx.Deadline()
	s.closeErr = ctx.Err()
	return nil
}

// split returns the ordinary events and the loss records received.
func (s *recSink) split() (events, losses []Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.events {
		if ev.Kind() == KindLoss {
			losses = append(losses, ev)
		} else {
			events = append(events, ev)
		}
	}
	return events, losses
}

func (s *recSink) count() int {
	ev, _ := s.split()
	return len(ev)
}

// lockedWriter serialises writes of concurrent loggers into one buffer.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func slogTo(w io.Writer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu: mu, w: w}, nil))
}
