package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// runAsync starts p.Run and returns a channel with its result.
func runAsync(ctx context.Context, p *Pipeline, grace time.Duration) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.Run(ctx, grace) }()
	return ch
}

func waitRun(t *testing.T, ch <-chan error, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(timeout):
		t.Fatalf("Run did not return within %s", timeout)
		return nil
	}
}

func TestNewChecksSpec(t *testing.T) {
	src, sink := newGen("a", 1, 1), &recSink{name: "k"}
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"no name", Spec{Sources: []Source{src}, Sinks: []Sink{sink}}, "name is empty"},
		{"no sources", Spec{Name: "p", Sinks: []Sink{sink}}, "no sources"},
		{"no sinks", Spec{Name: "p", Sources: []Source{src}}, "no sinks"},
		{"duplicate sink", Spec{Name: "p", Sources: []Source{src}, Sinks: []Sink{sink, sink}}, `sink name "k" is used twice`},
		{"nil source", Spec{Name: "p", Sources: []Source{nil}, Sinks: []Sink{sink}}, "source 0 is nil"},
		{"bad queue", Spec{Name: "p", Sources: []Source{src}, Sinks: []Sink{sink}, Queue: QueueConfig{MaxEvents: -1}}, "max events -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestBackpressure runs a fast generator into a slow sink under each policy.
func TestBackpressure(t *testing.T) {
	const (
		queueCap  = 256
		batchSize = 64
		sinkDelay = 2 * time.Millisecond
	)
	tests := []struct {
		policy Policy
		n      int
	}{
		{Block, 3000},
		{DropNewest, 50000},
		{DropOldest, 50000},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			reg := NewRegistry()
			gen := newGen("gen", tt.n, 100)
			sink := &recSink{name: "slow", delay: sinkDelay}
			p, err := New(Spec{
				Name: "p", Host: "h",
				Sources: []Source{gen}, Sinks: []Sink{sink},
				Queue:     QueueConfig{MaxEvents: queueCap, Policy: tt.policy},
				BatchSize: batchSize, BatchDelay: time.Millisecond,
				Metrics: reg,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ran := runAsync(ctx, p, 10*time.Second)
			select {
			case <-gen.done:
			case <-time.After(60 * time.Second):
				t.Fatal("generator did not finish")
			}
			cancel()
			if err := waitRun(t, ran, 30*time.Second); err != nil {
				t.Fatalf("Run: %v", err)
			}

			checkInvariant(t, reg, [2]string{"source", "gen"}, [2]string{"pipeline", "p"}, [2]string{"sink", "slow"})
			src, edge, sk := reg.Component("source", "gen"), reg.Component("pipeline", "p"), reg.Component("sink", "slow")
			if got := src.Received.Value(); got != uint64(tt.n) {
				t.Errorf("source received %d, want %d", got, tt.n)
			}
			events, losses := sink.split()
			dropped := edge.DroppedTotal() + sk.DroppedTotal()
			if got := uint64(len(events)) + dropped; got != uint64(tt.n) {
				t.Errorf("delivered %d + dropped %d = %d, want %d", len(events), dropped, got, tt.n)
			}
			if !slices.IsSorted(seqs(events)) {
				t.Error("delivered events are out of order")
			}
			if sink.closed != 1 {
				t.Errorf("sink closed %d times, want 1", sink.closed)
			}

			if tt.policy == Block {
				if dropped != 0 || len(losses) != 0 {
					t.Errorf("block dropped %d events, %d loss records; want none", dropped, len(losses))
				}
				if diff := cmp.Diff(seqRange(1, uint64(tt.n)), seqs(events)); diff != "" {
					t.Errorf("delivered seqs (-want +got):\n%s", diff)
				}
				return
			}

			// Had Emit blocked, the generator would have waited for the sink
			// to write nearly all events at sinkDelay per batch.
			blocked := time.Duration((tt.n-2*queueCap-2*batchSize)/batchSize) * sinkDelay
			t.Logf("emitted %d events in %s (blocked would need >= %s); delivered %d, dropped %d, %d loss records",
				tt.n, gen.emitDur, blocked, len(events), dropped, len(losses))
			if gen.emitDur > blocked/4 {
				t.Errorf("generator took %s to emit, want well under the %s a blocked producer needs", gen.emitDur, blocked)
			}
			if dropped == 0 {
				t.Fatal("nothing dropped behind a slow sink")
			}
			if n := edge.Dropped(ReasonShutdown).Value() + sk.Dropped(ReasonShutdown).Value(); n != 0 {
				t.Errorf("%d shutdown drops with an ample grace period", n)
			}
			// The loss records account for every drop, and their sequence
			// ranges cover exactly the missing events.
			var counted uint64
			type rng struct{ first, last uint64 }
			var ranges []rng
			for _, ev := range losses {
				s := summarize(t, ev)
				if s.Reason != ReasonQueueFull || s.Source != "gen" || s.Gadget != "trace_test" {
					t.Errorf("unexpected loss record %+v", s)
				}
				counted += s.Count
				ranges = append(ranges, rng{s.SeqFirst, s.SeqLast})
			}
			if counted != dropped {
				t.Errorf("loss records count %d, metrics %d", counted, dropped)
			}
			delivered := make(map[uint64]bool, len(events))
			for _, ev := range events {
				delivered[ev.Seq] = true
			}
			minMissing, maxMissing := uint64(0), uint64(0)
			for s := uint64(1); s <= uint64(tt.n); s++ {
				if delivered[s] {
					continue
				}
				if minMissing == 0 {
					minMissing = s
				}
				maxMissing = s
				if !slices.ContainsFunc(ranges, func(r rng) bool { return r.first <= s && s <= r.last }) {
					t.Fatalf("missing seq %d is in no loss record's range %v", s, ranges)
				}
			}
			lo := slices.MinFunc(ranges, func(a, b rng) int { return int(a.first) - int(b.first) }).first
			hi := slices.MaxFunc(ranges, func(a, b rng) int { return int(a.last) - int(b.last) }).last
			if lo != minMissing || hi != maxMissing {
				t.Errorf("loss ranges span %d..%d, missing events %d..%d", lo, hi, minMissing, maxMissing)
			}
		})
	}
}

// TestShutdownGraceRunsOut queues more than a slow sink can write within the
// grace period: Run returns soon after grace and counts the rest.
func TestShutdownGraceRunsOut(t *testing.T) {
	const n, grace = 2000, 150 * time.Millisecond
	reg := NewRegistry()
	gen := newGen("gen", n, 100)
	sink := &recSink{name: "slow", delay: 20 * time.Millisecond}
	p, err := New(Spec{
		Name: "p", Sources: []Source{gen}, Sinks: []Sink{sink},
		Queue: QueueConfig{MaxEvents: 4096},
		// A small blocking sink queue keeps most events in the edge queue,
		// so both queues hold events when grace runs out.
		SinkQueue: QueueConfig{MaxEvents: 20, Policy: Block},
		BatchSize: 10, Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := runAsync(ctx, p, grace)
	<-gen.done
	cancel()
	cancelled := time.Now()
	if err := waitRun(t, ran, 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Draining everything would take n/10 writes of 20ms = 4s.
	if el := time.Since(cancelled); el > 2*time.Second {
		t.Errorf("Run took %s after cancel with a %s grace period", el, grace)
	}
	checkInvariant(t, reg, [2]string{"source", "gen"}, [2]string{"pipeline", "p"}, [2]string{"sink", "slow"})
	edge, sk := reg.Component("pipeline", "p"), reg.Component("sink", "slow")
	shutdown := edge.Dropped(ReasonShutdown).Value() + sk.Dropped(ReasonShutdown).Value()
	if edge.Dropped(ReasonShutdown).Value() == 0 || shutdown <= edge.Dropped(ReasonShutdown).Value() {
		t.Errorf("shutdown drops: edge %d, sink %d; want both counted", edge.Dropped(ReasonShutdown).Value(), sk.Dropped(ReasonShutdown).Value())
	}
	if r, s, d := edge.Received.Value(), edge.Sent.Value(), edge.DroppedTotal(); r != n || s+d != n {
		t.Errorf("edge received %d, sent %d + dropped %d; want %d", r, s, d, n)
	}
	// The sink also received (and dropped) the final loss records: one for
	// the edge's drops and, unless the worker was not blocked on the sink
	// queue when grace ran out, one for the sink's.
	events, _ := sink.split()
	if got := uint64(len(events)) + sk.DroppedTotal(); got != edge.Sent.Value()+1 && got != edge.Sent.Value()+2 {
		t.Errorf("sink delivered %d + dropped %d, want %d events + 1 or 2 loss records", len(events), sk.DroppedTotal(), edge.Sent.Value())
	}
	if sink.closed != 1 {
		t.Fatalf("sink closed %d times, want 1", sink.closed)
	}
	if sink.closeDeadline.IsZero() || sink.closeDeadline.After(cancelled.Add(grace+time.Second)) {
		t.Errorf("Close deadline %v, want about %v", sink.closeDeadline, cancelled.Add(grace))
	}
	if reg.Snapshot().Get(MetricQueueLen, "component", "sink", "name", "slow") != 0 {
		t.Error("sink queue gauge is not zero after Run")
	}
}

// TestShutdownDrains checks that with an ample grace period every event
// emitted before cancellation is written, and sinks are closed after their
// last write with a context the cancelled parent does not cancel.
func TestShutdownDrains(t *testing.T) {
	const n = 500
	reg := NewRegistry()
	gen := newGen("gen", n, 50)
	a, b := &recSink{name: "a", delay: time.Millisecond}, &recSink{name: "b"}
	p, err := New(Spec{Name: "p", Sources: []Source{gen}, Sinks: []Sink{a, b}, BatchSize: 20, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := runAsync(ctx, p, 10*time.Second)
	<-gen.done
	cancel()
	if err := waitRun(t, ran, 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, s := range []*recSink{a, b} {
		events, losses := s.split()
		if diff := cmp.Diff(seqRange(1, n), seqs(events)); diff != "" {
			t.Errorf("sink %s seqs (-want +got):\n%s", s.name, diff)
		}
		if len(losses) != 0 {
			t.Errorf("sink %s got %d loss records, want none", s.name, len(losses))
		}
		if s.closed != 1 || s.writeAfterEnd || s.closeErr != nil {
			t.Errorf("sink %s: closed %d times, write after close %v, close ctx err %v", s.name, s.closed, s.writeAfterEnd, s.closeErr)
		}
		checkInvariant(t, reg, [2]string{"sink", s.name})
	}
}

// TestRunEndsWhenSourcesFinish checks that Run returns on its own once every
// source has returned, after delivering their events.
func TestRunEndsWhenSourcesFinish(t *testing.T) {
	gen := newGen("gen", 10, 3)
	gen.finite = true
	sink := &recSink{name: "k"}
	p, err := New(Spec{Name: "p", Sources: []Source{gen}, Sinks: []Sink{sink}})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitRun(t, runAsync(context.Background(), p, 10*time.Second), 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := sink.count(); got != 10 {
		t.Errorf("sink got %d events, want 10", got)
	}
	if err := p.Run(context.Background(), time.Second); err == nil {
		t.Error("second Run succeeded, want an error")
	}
}

type failSource struct {
	name   string
	err    error
	failed chan struct{}
}

func (f *failSource) Name() string { return f.name }
func (f *failSource) Run(context.Context, Emitter) error {
	close(f.failed)
	return f.err
}

// waitingGen emits only after another source has failed.
type waitingGen struct {
	*genSource
	after <-chan struct{}
}

func (w *waitingGen) Run(ctx context.Context, out Emitter) error {
	<-w.after
	time.Sleep(20 * time.Millisecond)
	return w.genSource.Run(ctx, out)
}

func TestSourceErrorDoesNotStopOthers(t *testing.T) {
	errAttach := errors.New("attach tracepoint: no such file")
	bad := &failSource{name: "bad", err: errAttach, failed: make(chan struct{})}
	good := &waitingGen{genSource: newGen("good", 100, 10), after: bad.failed}
	sink := &recSink{name: "k"}
	reg := NewRegistry()
	var logs bytes.Buffer
	var logMu sync.Mutex
	p, err := New(Spec{
		Name: "p", Sources: []Source{bad, good}, Sinks: []Sink{sink}, Metrics: reg,
		Logger: slogTo(&logs, &logMu),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := runAsync(ctx, p, 10*time.Second)
	waitFor(t, "events of the good source", 30*time.Second, func() bool { return sink.count() == 100 })
	cancel()
	err = waitRun(t, ran, 30*time.Second)
	if !errors.Is(err, errAttach) || !strings.Contains(err.Error(), "run source bad") {
		t.Errorf("Run error = %v, want it to wrap the source's error", err)
	}
	if n := reg.Component("source", "bad").Errors.Value(); n != 1 {
		t.Errorf("bad source errors = %d, want 1", n)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "source failed") {
		t.Errorf("failure not logged; log:\n%s", logs.String())
	}
}

// evenStage keeps events with an even seq.
type evenStage struct{}

func (evenStage) Name() string { return "even" }
func (evenStage) Process(_ context.Context, in, out []Event) ([]Event, error) {
	for _, ev := range in {
		if ev.Seq%2 == 0 {
			out = append(out, ev)
		}
	}
	return out, nil
}
func (evenStage) Close(context.Context) error { return nil }

// flakyStage fails every other call and doubles events otherwise.
type flakyStage struct {
	calls  int
	closed bool
}

func (f *flakyStage) Name() string { return "flaky" }
func (f *flakyStage) Process(_ context.Context, in, out []Event) ([]Event, error) {
	f.calls++
	if f.calls%2 == 0 {
		return out, fmt.Errorf("call %d failed", f.calls)
	}
	for _, ev := range in {
		out = append(out, ev, ev)
	}
	return out, nil
}
func (f *flakyStage) Close(context.Context) error {
	f.closed = true
	return errors.New("close flaky")
}

func TestStages(t *testing.T) {
	const n = 1000
	reg := NewRegistry()
	gen := newGen("gen", n, 10)
	gen.finite = true
	flaky := &flakyStage{}
	sink := &recSink{name: "k"}
	p, err := New(Spec{
		Name: "p", Sources: []Source{gen}, Stages: []Stage{evenStage{}, flaky}, Sinks: []Sink{sink},
		BatchSize: 10, Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = waitRun(t, runAsync(context.Background(), p, 10*time.Second), 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "close stage flaky: close flaky") {
		t.Errorf("Run error = %v, want the stage's Close error", err)
	}
	checkInvariant(t, reg, [2]string{"stage", "even"}, [2]string{"stage", "flaky"}, [2]string{"sink", "k"})
	even, fl := reg.Component("stage", "even"), reg.Component("stage", "flaky")
	if r, s, f := even.Received.Value(), even.Sent.Value(), even.Dropped(ReasonFiltered).Value(); r != n || s != n/2 || f != n/2 {
		t.Errorf("even stage received %d sent %d filtered %d, want %d, %d, %d", r, s, f, n, n/2, n/2)
	}
	events, losses := sink.split()
	if len(losses) != 0 {
		t.Errorf("filtering produced %d loss records, want none", len(losses))
	}
	for _, ev := range events {
		if ev.Seq%2 != 0 {
			t.Fatalf("odd seq %d passed the even stage", ev.Seq)
		}
	}
	// Passed-through (failed) batches carry each event once, others twice.
	if errs := fl.Errors.Value(); errs == 0 || uint64(len(events)) != fl.Sent.Value() || fl.Sent.Value() <= n/2 {
		t.Errorf("flaky stage errors %d sent %d, sink got %d", errs, fl.Sent.Value(), len(events))
	}
	if !flaky.closed {
		t.Error("stage not closed")
	}
}

// gatedSink blocks its first Write until the gate opens and fails writes of
// batches containing seq 100.
type gatedSink struct {
	recSink
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (g *gatedSink) Write(ctx context.Context, batch []Event) error {
	g.once.Do(func() {
		close(g.entered)
		<-g.gate
	})
	return g.recSink.Write(ctx, batch)
}

// lossSource reports a kernel loss, emits seq 1, waits for the sink to be
// stuck on it, then emits seq 2..11 (of which the sink queue holds 4), then
// seq 100 (which the sink fails to write) when told to.
type lossSource struct {
	entered, send100 <-chan struct{}
}

func (lossSource) Name() string { return "exec" }
func (l lossSource) Run(ctx context.Context, out Emitter) error {
	schema := &Schema{Gadget: "trace_exec"}
	mk := func(first, n uint64) []Event {
		evs := make([]Event, n)
		for i := range evs {
			evs[i] = Event{Data: []byte{0x80}, Schema: schema, Source: "exec", Seq: first + uint64(i)}
		}
		return evs
	}
	out.(LossReporter).ReportLoss("exec", "trace_exec", ReasonKernel, 7)
	if err := out.Emit(ctx, mk(1, 1)); err != nil {
		return err
	}
	<-l.entered
	if err := out.Emit(ctx, mk(2, 10)); err != nil {
		return err
	}
	<-l.send100
	if err := out.Emit(ctx, mk(100, 1)); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func TestLossRecordsInStream(t *testing.T) {
	reg := NewRegistry()
	sink := &gatedSink{recSink: recSink{name: "gated"}, entered: make(chan struct{}), gate: make(chan struct{})}
	sink.fail = func(batch []Event) error {
		if slices.ContainsFunc(batch, func(ev Event) bool { return ev.Seq == 100 }) {
			return errors.New("publish: no responders")
		}
		return nil
	}
	send100 := make(chan struct{})
	p, err := New(Spec{
		Name: "p", Host: "node-a",
		Sources:   []Source{lossSource{entered: sink.entered, send100: send100}},
		Sinks:     []Sink{sink},
		Queue:     QueueConfig{MaxEvents: 1024, Policy: Block},
		SinkQueue: QueueConfig{MaxEvents: 4, Policy: DropNewest},
		BatchSize: 64, BatchDelay: time.Millisecond,
		LossInterval: 30 * time.Millisecond,
		Metrics:      reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	sk := reg.Component("sink", "gated")
	ctx, cancel := context.WithCancel(context.Background())
	ran := runAsync(ctx, p, 10*time.Second)
	waitFor(t, "6 sink queue drops", 30*time.Second, func() bool { return sk.Dropped(ReasonQueueFull).Value() == 6 })
	close(sink.gate)
	// Send the event the sink fails on only once the earlier loss records
	// are delivered, so that they cannot share its failing batch.
	waitFor(t, "the kernel and queue_full loss records", 30*time.Second, func() bool {
		_, losses := sink.split()
		return len(losses) == 2
	})
	close(send100)
	waitFor(t, "the failed write", 30*time.Second, func() bool { return sk.Dropped(ReasonSinkError).Value() == 1 })
	// The periodic flush, not the final one, must bring the sink_error record.
	waitFor(t, "the sink_error loss record", 30*time.Second, func() bool {
		_, losses := sink.split()
		return slices.ContainsFunc(losses, func(ev Event) bool {
			return bytes.Contains(ev.Data, []byte(ReasonSinkError))
		})
	})
	cancel()
	if err := waitRun(t, ran, 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}

	events, losses := sink.split()
	if diff := cmp.Diff(seqRange(1, 5), seqs(events)); diff != "" {
		t.Errorf("delivered seqs (-want +got):\n%s", diff)
	}
	var got []lossSummary
	for _, ev := range losses {
		got = append(got, summarize(t, ev))
		if m := decodeLoss(t, ev); m["host"] != "node-a" || m["type"] != "loss" {
			t.Errorf("loss record envelope host %v type %v", m["host"], m["type"])
		}
	}
	slices.SortFunc(got, func(a, b lossSummary) int { return strings.Compare(a.Reason, b.Reason) })
	want := []lossSummary{
		{Source: "exec", Gadget: "trace_exec", Component: "source.exec", Reason: ReasonKernel, Count: 7},
		{Source: "exec", Gadget: "trace_exec", Component: "sink.gated", Reason: ReasonQueueFull, Count: 6, SeqFirst: 6, SeqLast: 11},
		{Source: "exec", Gadget: "trace_exec", Component: "sink.gated", Reason: ReasonSinkError, Count: 1, SeqFirst: 100, SeqLast: 100},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("loss records (-want +got):\n%s", diff)
	}

	checkInvariant(t, reg, [2]string{"source", "exec"}, [2]string{"pipeline", "p"}, [2]string{"sink", "gated"})
	if n := reg.Component("source", "exec").Dropped(ReasonKernel).Value(); n != 7 {
		t.Errorf("source kernel drops = %d, want 7", n)
	}
	var text strings.Builder
	if _, err := reg.WriteTo(&text); err != nil {
		t.Fatal(err)
	}
	checkExposition(t, text.String())
	for _, line := range []string{
		`sluice_events_received_total{component="source",name="exec"} 19`,
		`sluice_events_dropped_total{component="source",name="exec",reason="kernel"} 7`,
		`sluice_events_dropped_total{component="sink",name="gated",reason="queue_full"} 6`,
		`sluice_events_dropped_total{component="sink",name="gated",reason="sink_error"} 1`,
		`sluice_errors_total{component="sink",name="gated"} 1`,
		`sluice_events_sent_total{component="pipeline",name="p"} 12`,
		`sluice_queue_events{component="pipeline",name="p"} 0`,
	} {
		if !strings.Contains(text.String(), line+"\n") {
			t.Errorf("metrics lack %q; got:\n%s", line, text.String())
		}
	}
}
