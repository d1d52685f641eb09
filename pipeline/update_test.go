package pipeline

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// seqSource emits numbered events in batches as fast as the edge takes
// them until its context ends, and counts its runs.
type seqSource struct {
	name    string
	runs    atomic.Int32
	emitted atomic.Uint64
}

func (s *seqSource) Name() string { return s.name }

func (s *seqSource) Run(ctx context.Context, out Emitter) error {
	s.runs.Add(1)
	for ctx.Err() == nil {
		first := s.emitted.Load() + 1
		batch := mkEvents(s.name, first, 64, 16)
		if err := out.Emit(ctx, batch); err != nil {
			return nil // cancelled while blocked: the queue counted the rest as shutdown
		}
		s.emitted.Add(64)
	}
	return nil
}

// pushSource emits the batches a test hands it.
type pushSource struct {
	name string
	in   chan []Event
	runs atomic.Int32
}

func (s *pushSource) Name() string { return s.name }

func (s *pushSource) Run(ctx context.Context, out Emitter) error {
	s.runs.Add(1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-s.in:
			if err := out.Emit(ctx, b); err != nil {
				return err
			}
		}
	}
}

// allSeqs returns the sequence numbers of the ordinary events of sinks, in
// the order the sinks are given.
func allSeqs(sinks ...*recSink) []uint64 {
	var out []uint64
	for _, s := range sinks {
		evs, _ := s.split()
		out = append(out, seqs(evs)...)
	}
	return out
}

// TestUpdateUnderLoad swaps a sink ten times (a new value under the same
// name) and adds and removes a stage while a source emits as fast as the
// pipeline takes events under "block": the source keeps running (one Run),
// every event reaches the sinks exactly once and in order (the swapped-in
// sink continues the old one's queue), each replaced sink is closed once,
// and the events passing while the stage ran are the ones it let through.
func TestUpdateUnderLoad(t *testing.T) {
	src := &seqSource{name: "gen"}
	reg := NewRegistry()
	sinks := []*recSink{{name: "out"}}
	spec := Spec{Name: "p", Sources: []Source{src}, Sinks: []Sink{sinks[0]}, Metrics: reg,
		Queue: QueueConfig{MaxEvents: 512, Policy: Block}, BatchDelay: time.Millisecond}
	p, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(ctx, p, 10*time.Second)
	for i := range 10 {
		// Let events flow between two updates.
		before := src.emitted.Load()
		waitFor(t, "events between updates", 10*time.Second, func() bool { return src.emitted.Load() > before+1000 })
		next := &recSink{name: "out"}
		spec.Sinks = []Sink{next}
		spec.Stages = nil
		if i%2 == 0 {
			spec.Stages = []Stage{evenStage{}}
		}
		if err := p.Update(context.Background(), spec); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		prev := sinks[len(sinks)-1]
		sinks = append(sinks, next)
		prev.mu.Lock()
		closed := prev.closed
		prev.mu.Unlock()
		if closed != 1 {
			// The swap is done when Update returns; the close of the old
			// sink runs behind it.
			waitFor(t, "the replaced sink closed", 5*time.Second, func() bool {
				prev.mu.Lock()
				defer prev.mu.Unlock()
				return prev.closed == 1
			})
		}
	}
	cancel()
	if err := waitRun(t, done, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := src.runs.Load(); n != 1 {
		t.Errorf("the source ran %d times; an update must keep it running", n)
	}
	got := allSeqs(sinks...)
	emitted := src.emitted.Load()
	// Every emitted event once, in order, except those the stage filtered.
	var filtered uint64
	last := uint64(0)
	for _, seq := range got {
		if seq <= last {
			t.Fatalf("seq %d after %d: out of order or twice", seq, last)
		}
		filtered += seq - last - 1
		last = seq
	}
	snap := reg.Snapshot()
	if last != emitted {
		// The cancellation cut a batch: the part of it that was queued
		// went through, the rest was counted as dropped (shutdown), and
		// Emit failed, so the source did not count the batch as emitted.
		// Where a cut falls depends on how the queue's segments lie.
		cut := snap.Get(MetricDropped, "component", "pipeline", "name", "p", "reason", ReasonShutdown)
		if last < emitted || last-emitted+uint64(cut) != 64 {
			t.Errorf("last seq %d, emitted %d, dropped at shutdown %v", last, emitted, cut)
		}
	}
	if f := snap.Get(MetricDropped, "component", "stage", "name", "even", "reason", ReasonFiltered); uint64(f) != filtered {
		t.Errorf("gaps hold %d events; the stage filtered %v", filtered, f)
	}
	if d := snap.Get(MetricDropped, "component", "pipeline", "name", "p", "reason", ReasonQueueFull); d != 0 {
		t.Errorf("dropped %v events under block", d)
	}
	for i, s := range sinks {
		if s.closed != 1 {
			t.Errorf("sink value %d closed %d times", i, s.closed)
		}
		if s.writeAfterEnd {
			t.Errorf("sink value %d written after Close", i)
		}
	}
}

// TestUpdateAddsAndRemoves: a new source starts and a removed one stops
// (its Run returns), a new sink gets the events that follow the update,
// and a removed sink drains what it was given and is closed.
func TestUpdateAddsAndRemoves(t *testing.T) {
	a := &pushSource{name: "a", in: make(chan []Event)}
	b := &pushSource{name: "b", in: make(chan []Event)}
	s1, s2 := &recSink{name: "one"}, &recSink{name: "two"}
	spec := Spec{Name: "p", Sources: []Source{a}, Sinks: []Sink{s1}, BatchDelay: -1}
	p, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(ctx, p, 5*time.Second)
	a.in <- mkEvents("a", 1, 10, 8)
	waitFor(t, "a's events in sink one", 5*time.Second, func() bool { return s1.count() == 10 })

	spec.Sources = []Source{b}
	spec.Sinks = []Sink{s2}
	if err := p.Update(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	s1.mu.Lock()
	if s1.closed != 1 {
		t.Errorf("removed sink closed %d times by the time Update returned", s1.closed)
	}
	s1.mu.Unlock()
	if got := p.Edges(); !slices.Equal(got, []string{"sink.two", "source.b"}) {
		t.Errorf("edges after the update: %v", got)
	}
	select {
	case a.in <- mkEvents("a", 11, 1, 8):
		t.Error("the removed source still runs")
	case b.in <- mkEvents("b", 1, 5, 8):
	}
	waitFor(t, "b's events in sink two", 5*time.Second, func() bool { return s2.count() == 5 })
	cancel()
	if err := waitRun(t, done, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if s1.count() != 10 || s2.count() != 5 {
		t.Errorf("sink one has %d events, sink two %d; want 10 and 5", s1.count(), s2.count())
	}
	if s2.closed != 1 || s1.closed != 1 {
		t.Errorf("closes: one %d, two %d; want 1 each", s1.closed, s2.closed)
	}
	if err := p.Update(context.Background(), spec); !errors.Is(err, ErrStopped) {
		t.Errorf("Update after Run = %v, want ErrStopped", err)
	}
}

// TestUpdateRefused: a spec the pipeline cannot run changes nothing.
func TestUpdateRefused(t *testing.T) {
	a := &pushSource{name: "a", in: make(chan []Event)}
	s1 := &recSink{name: "one"}
	spec := Spec{Name: "p", Sources: []Source{a}, Sinks: []Sink{s1}, BatchDelay: -1}
	p, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(ctx, p, 5*time.Second)
	defer func() { cancel(); waitRun(t, done, 10*time.Second) }()
	bad := spec
	bad.Sinks = nil
	if err := p.Update(context.Background(), bad); err == nil {
		t.Fatal("an update without sinks was accepted")
	}
	a.in <- mkEvents("a", 1, 3, 8)
	waitFor(t, "events after the refused update", 5*time.Second, func() bool { return s1.count() == 3 })
}

// TestTap: a tap after a stage sees exactly what the stage let through,
// one on the source sees everything, a sampled one every other event, and
// a tap nobody reads loses events to itself (counted), never to the
// pipeline.
func TestTap(t *testing.T) {
	a := &pushSource{name: "a", in: make(chan []Event)}
	sink := &recSink{name: "out"}
	reg := NewRegistry()
	p, err := New(Spec{Name: "p", Sources: []Source{a}, Stages: []Stage{evenStage{}}, Sinks: []Sink{sink}, BatchDelay: -1, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Tap("stage.nope.out", TapOptions{}); !errors.Is(err, ErrNoEdge) {
		t.Errorf("tap of an unknown edge = %v, want ErrNoEdge", err)
	}
	after, err := p.Tap("stage.even.out", TapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := p.Tap("source.a", TapOptions{})
	sampled, _ := p.Tap("stage.even.in", TapOptions{Sample: 0.5})
	stuck, _ := p.Tap("sink.out", TapOptions{Buffer: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(ctx, p, 5*time.Second)
	for i := uint64(0); i < 100; i += 10 {
		a.in <- mkEvents("a", i+1, 10, 8)
		// One batch at a time through the sink, so that the stuck tap
		// holds the first and loses the other nine.
		waitFor(t, "a batch in the sink", 5*time.Second, func() bool { return uint64(sink.count()) == (i+10)/2 })
	}
	waitFor(t, "the events in the sink", 5*time.Second, func() bool { return sink.count() == 50 })

	read := func(tp *Tap, n int) []uint64 {
		var out []uint64
		for len(out) < n {
			select {
			case evs := <-tp.C():
				out = append(out, seqs(evs)...)
			case <-time.After(5 * time.Second):
				t.Fatalf("tap %s: %d events, want %d", tp.Edge(), len(out), n)
			}
		}
		return out
	}
	var even, all, half []uint64
	for i := uint64(1); i <= 100; i++ {
		all = append(all, i)
		if i%2 == 0 {
			even = append(even, i)
			half = append(half, i)
		}
	}
	if got := read(after, 50); !slices.Equal(got, even) {
		t.Errorf("after the stage: %v", got)
	}
	if got := read(before, 100); !slices.Equal(got, all) {
		t.Errorf("source: %v", got)
	}
	if got := read(sampled, 50); !slices.Equal(got, half) {
		t.Errorf("sampled at 0.5: %v", got)
	}
	if stuck.Dropped() != 45 {
		t.Errorf("the unread tap lost %d events, want 45 (50 written, one batch of 5 held)", stuck.Dropped())
	}
	if got := reg.Snapshot().Get(MetricTapDropped, "component", "pipeline", "name", "p"); got != 45 {
		t.Errorf("%s = %v, want 45", MetricTapDropped, got)
	}
	after.Close()
	select {
	case <-after.Done():
	default:
		t.Error("Done not closed after Close")
	}
	cancel()
	if err := waitRun(t, done, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-before.Done():
	case <-time.After(time.Second):
		t.Error("a tap did not end with its pipeline")
	}
}

// BenchmarkTap measures the cost of taps on a pipeline moving events
// through one stage to one sink: nobody tapping, a tap read as fast as
// events come, and a tap nobody reads (its buffer full, every offer lost).
// Compare the ns/op of the three within one run.
func BenchmarkTap(b *testing.B) {
	for _, mode := range []string{"none", "reading", "stuck"} {
		b.Run(mode, func(b *testing.B) {
			src := &countedSource{name: "gen", n: b.N}
			sink := &countSink{name: "out"}
			p, err := New(Spec{Name: "p", Sources: []Source{src}, Stages: []Stage{evenStage{}}, Sinks: []Sink{sink},
				Queue: QueueConfig{Policy: Block}})
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			switch mode {
			case "reading":
				tp, _ := p.Tap("stage.even.out", TapOptions{})
				wg.Go(func() {
					for {
						select {
						case <-tp.C():
						case <-tp.Done():
							return
						}
					}
				})
			case "stuck":
				p.Tap("stage.even.out", TapOptions{Buffer: 1})
			}
			b.ReportAllocs()
			b.ResetTimer()
			if err := p.Run(context.Background(), time.Minute); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			wg.Wait()
			if got, want := sink.n.Load(), uint64(b.N/2); got != want {
				b.Fatalf("sink wrote %d events, want %d (the even half)", got, want)
			}
		})
	}
}

// countedSource emits n events in batches of 256, then returns.
type countedSource struct {
	name string
	n    int
}

func (s *countedSource) Name() string { return s.name }

func (s *countedSource) Run(ctx context.Context, out Emitter) error {
	data := make([]byte, 64)
	batch := make([]Event, 0, 256)
	for seq := 1; seq <= s.n; seq++ {
		batch = append(batch, Event{Data: data, Schema: testSchema, Source: s.name, Seq: uint64(seq)})
		if len(batch) == cap(batch) || seq == s.n {
			if err := out.Emit(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

type countSink struct {
	name string
	n    atomic.Uint64
}

func (s *countSink) Name() string { return s.name }
func (s *countSink) Write(_ context.Context, batch []Event) error {
	s.n.Add(uint64(len(batch)))
	return nil
}
func (s *countSink) Close(context.Context) error { return nil }
