package pipeline

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// batchOf returns a batch from the pool holding n events of source
// numbered from first.
func batchOf(source string, first uint64, n int) []Event {
	b := NewBatch(n)
	for i := range n {
		b = append(b, Event{Data: []byte(fmt.Sprintf("%s-%d", source, first+uint64(i))), Schema: testSchema, Source: source, Seq: first + uint64(i)})
	}
	return b
}

func TestQueuePushBatchHandsTheArrayOver(t *testing.T) {
	q, m, _ := newTestQueue(t, QueueConfig{MaxEvents: 1024})
	b := batchOf("a", 1, 256)
	first := &b[0]
	if err := q.pushBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got, err := q.popBatch(context.Background(), 256, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != first {
		t.Error("popBatch copied a batch it could hand over whole")
	}
	if !slices.Equal(seqs(got), seqRange(1, 256)) {
		t.Errorf("seqs %v", seqs(got))
	}
	if m.Received.Value() != 256 {
		t.Errorf("received %d, want 256", m.Received.Value())
	}
	if n, bytes, _ := q.Fill(); n != 0 || bytes != 0 {
		t.Errorf("fill after pop: %d events, %d bytes", n, bytes)
	}
}

// A batch that does not fit is pushed as Push pushes it, and counted
// once: a queue that counted it on the way in and again in Push would
// show more received than sent and dropped.
func TestQueuePushBatchThatDoesNotFitCountsOnce(t *testing.T) {
	for _, policy := range []Policy{Block, DropNewest, DropOldest} {
		t.Run(policy.String(), func(t *testing.T) {
			q, m, _ := newTestQueue(t, QueueConfig{MaxEvents: 10, Policy: policy})
			if err := q.Push(context.Background(), mkEvents("a", 1, 8, 8)); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if policy == Block {
				cancel() // the 3 that do not fit are dropped at once (shutdown)
			}
			defer cancel()
			_ = q.pushBatch(ctx, batchOf("b", 1, 5))
			got, err := q.Pop(context.Background(), nil, 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 10 {
				t.Errorf("queued %d events, want 10", len(got))
			}
			m.Sent.Add(uint64(len(got)))
			if r := m.Received.Value(); r != 13 {
				t.Errorf("received %d, want 13", r)
			}
			if r, s, d := m.Received.Value(), m.Sent.Value(), m.DroppedTotal(); r != s+d {
				t.Errorf("received %d != sent %d + dropped %d", r, s, d)
			}
		})
	}
}

// Short segments are joined into one batch by copying, the last one cut
// to fill it; a segment of at least half a batch is handed over as it is.
func TestQueuePopBatchJoinsShortSegments(t *testing.T) {
	q, _, _ := newTestQueue(t, QueueConfig{MaxEvents: 1024})
	for i := range 10 {
		if err := q.pushBatch(context.Background(), batchOf("a", uint64(1+10*i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := q.popBatch(context.Background(), 64, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqs(got), seqRange(1, 64)) {
		t.Errorf("first batch %v, want 1..64", seqs(got))
	}
	ReleaseBatch(got)
	got, _ = q.popBatch(context.Background(), 64, 0, nil, nil)
	if !slices.Equal(seqs(got), seqRange(65, 100)) {
		t.Errorf("second batch %v, want 65..100", seqs(got))
	}
	big := batchOf("b", 1, 40)
	if err := q.pushBatch(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	_ = q.pushBatch(context.Background(), batchOf("b", 41, 30))
	got, _ = q.popBatch(context.Background(), 64, 0, nil, nil)
	if &got[0] != &big[0] || !slices.Equal(seqs(got), seqRange(1, 40)) {
		t.Errorf("a segment of 40 of 64 was not handed over whole: %v", seqs(got))
	}
}

// Events pushed by copy go into the room left after a segment handed
// over, and everything comes out in order, intact.
func TestQueueSegmentsKeepOrderAndData(t *testing.T) {
	q, _, _ := newTestQueue(t, QueueConfig{MaxEvents: 1 << 16})
	ctx := context.Background()
	var want []string
	seq := uint64(1)
	for round := range 200 {
		n := 1 + round*7%300
		if round%3 == 0 {
			evs := batchOf("a", seq, n)
			for _, ev := range evs {
				want = append(want, string(ev.Data))
			}
			if err := q.Push(ctx, evs); err != nil {
				t.Fatal(err)
			}
			ReleaseBatch(evs)
		} else {
			b := batchOf("a", seq, n)
			for _, ev := range b {
				want = append(want, string(ev.Data))
			}
			if err := q.pushBatch(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		seq += uint64(n)
	}
	var got []string
	for len(got) < len(want) {
		b, err := q.popBatch(ctx, 256, 0, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range b {
			got = append(got, string(ev.Data))
		}
		ReleaseBatch(b)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events out of order or changed (%d of %d)", len(got), len(want))
	}
}

func TestReleaseBatchClearsTheArray(t *testing.T) {
	// Drain the pool so that the next NewBatch returns what we release.
	for len(batchPool) > 0 {
		<-batchPool
	}
	b := batchOf("a", 1, 100)
	ReleaseBatch(b[:10]) // the slots past len are cleared too
	got := NewBatch(1)
	if cap(got) != cap(b) || &got[:1][0] != &b[0] {
		t.Fatal("NewBatch did not return the released array")
	}
	for i, ev := range got[:cap(got)] {
		if ev.Data != nil || ev.Schema != nil || ev.Source != "" {
			t.Fatalf("slot %d kept an event: the pool would keep its Data alive", i)
		}
	}
}

// stageFunc is a stage made of a function.
type stageFunc struct {
	name string
	fn   func(in, out []Event) []Event
}

func (s *stageFunc) Name() string                { return s.name }
func (s *stageFunc) Close(context.Context) error { return nil }
func (s *stageFunc) Process(_ context.Context, in, out []Event) ([]Event, error) {
	return s.fn(in, out), nil
}

// Batches are handed from queue to queue and through stages of every kind
// of output (appended to out, filtered in place, a tail of the input, a
// new array), into two sinks: each sink gets every event, intact, in
// order, and the counters balance.
func TestPipelineHandsBatchesOverIntact(t *testing.T) {
	const n = 20000
	appendAll := &stageFunc{name: "append", fn: func(in, out []Event) []Event { return append(out, in...) }}
	inPlace := &stageFunc{name: "inplace", fn: func(in, out []Event) []Event { return in }}
	tail := &stageFunc{name: "tail", fn: func(in, out []Event) []Event {
		// Hand back the input without its first event, which is appended
		// to a new array with the rest: a tail of in, then a fresh one.
		if len(in) < 2 {
			return in
		}
		return append([]Event{in[0]}, in[1:]...)
	}}
	shift := &stageFunc{name: "shift", fn: func(in, out []Event) []Event {
		// Drop the first event of a batch that starts a source batch:
		// a result that starts inside in's array.
		if len(in) > 1 && in[0].Seq%256 == 1 {
			return in[1:]
		}
		return in
	}}
	a, b := &recSink{name: "a"}, &recSink{name: "b"}
	src := newGen("src", n, 256)
	src.finite = true
	reg := NewRegistry()
	p, err := New(Spec{Name: "t", Sources: []Source{&batchGen{src}}, Stages: []Stage{appendAll, inPlace, tail, shift}, Sinks: []Sink{a, b}, Metrics: reg, BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	filtered := reg.Component("stage", "shift").Dropped(ReasonFiltered).Value()
	if filtered == 0 {
		t.Error("the shift stage never returned a tail of its input")
	}
	for _, s := range []*recSink{a, b} {
		evs, _ := s.split()
		if uint64(len(evs))+filtered != n {
			t.Errorf("sink %s: %d events + %d filtered, want %d", s.name, len(evs), filtered, n)
		}
		for i, ev := range evs {
			if i > 0 && ev.Seq <= evs[i-1].Seq {
				t.Fatalf("sink %s: event %d after %d", s.name, ev.Seq, evs[i-1].Seq)
			}
			if want := fmt.Sprintf("src-%d", ev.Seq); string(ev.Data) != want {
				t.Fatalf("sink %s: event %d has Data %q, want %q", s.name, ev.Seq, ev.Data, want)
			}
		}
	}
	checkInvariant(t, reg, [2]string{"source", "src"}, [2]string{"pipeline", "t"},
		[2]string{"stage", "append"}, [2]string{"stage", "inplace"}, [2]string{"stage", "tail"}, [2]string{"stage", "shift"},
		[2]string{"sink", "a"}, [2]string{"sink", "b"})
}

// batchGen is genSource handing its batches over (BatchEmitter), with
// Data that names the event.
type batchGen struct{ *genSource }

func (g *batchGen) Run(ctx context.Context, out Emitter) error {
	be := out.(BatchEmitter)
	seq := uint64(1)
	for emitted := 0; emitted < g.n; {
		k := min(g.batch, g.n-emitted)
		if err := be.EmitBatch(ctx, batchOf(g.name, seq, k)); err != nil {
			return err
		}
		seq += uint64(k)
		emitted += k
	}
	return nil
}

// A segment of at least half a batch is a batch of its own: popBatch
// takes it at once, not after the batch delay, so that events pushed a
// poll's worth at a time do not wait at every queue for the next poll.
func TestQueuePopBatchTakesAHalfBatchAtOnce(t *testing.T) {
	q, _, _ := newTestQueue(t, QueueConfig{MaxEvents: 1024})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan []Event)
	go func() {
		b, _ := q.popBatch(ctx, 256, time.Hour, nil, nil) // waits: the queue is empty
		got <- b
	}()
	// A short segment first: not a batch of its own.
	if err := q.pushBatch(ctx, batchOf("a", 1, 20)); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		// The consumer may have woken for the first event; it must not
		// return a short batch before the delay.
		t.Fatalf("popBatch returned %d events before the batch delay", len(b))
	case <-time.After(50 * time.Millisecond):
	}
	// Pop it aside so that the next segment is the first.
	if evs, err := q.Pop(ctx, nil, 20, 0); err != nil || len(evs) != 20 {
		t.Fatalf("pop the short segment: %d events, %v", len(evs), err)
	}
	half := batchOf("a", 21, 128)
	if err := q.pushBatch(ctx, half); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if &b[0] != &half[0] || len(b) != 128 {
			t.Errorf("got %d events, not the segment pushed", len(b))
		}
	case <-ctx.Done():
		t.Fatal("popBatch waited for the batch delay with half a batch queued in one segment")
	}
}

// BenchmarkQueueHandOver is BenchmarkQueuePushPop with the batch handed
// over and back (pushBatch, popBatch, ReleaseBatch), as the pipeline
// moves batches between its queues, with the GC marking the whole time
// (a goroutine allocates flat out), as it does in an agent at a million
// events a second: then every Event copied costs write barriers.
func BenchmarkQueueHandOver(b *testing.B) {
	for _, mode := range []string{"copy", "handover"} {
		b.Run(mode, func(b *testing.B) {
			q, _, _ := newTestQueue(b, QueueConfig{MaxEvents: 1024})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				var sink [][]byte
				for ctx.Err() == nil {
					sink = append(sink[:0], make([]byte, 64<<10))
				}
				_ = sink
			}()
			data := make([]byte, 100)
			src := make([]Event, 256)
			for i := range src {
				src[i] = Event{Data: data, Schema: testSchema, Source: "s", Seq: uint64(i)}
			}
			dst := make([]Event, 0, 256)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if mode == "copy" {
					if err := q.Push(ctx, src); err != nil {
						b.Fatal(err)
					}
					var err error
					if dst, err = q.Pop(ctx, dst[:0], 256, 0); err != nil || len(dst) != 256 {
						b.Fatal(err)
					}
					clear(dst)
					continue
				}
				batch := append(NewBatch(256), src...)
				if err := q.pushBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
				got, err := q.popBatch(ctx, 256, 0, nil, nil)
				if err != nil || len(got) != 256 {
					b.Fatal(err)
				}
				ReleaseBatch(got)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/event")
		})
	}
}

// A control event taken with the events behind it must not cut a
// segment: the remainder would be at the front from then on, and every
// later take would copy. The last full run's profile had a sink's writer
// copying every batch after the first loss record.
func TestQueuePopBatchKeepsSegmentsWhole(t *testing.T) {
	q, _, _ := newTestQueue(t, QueueConfig{MaxEvents: 4096})
	ctx := context.Background()
	var pushed [][]Event
	for i := range 4 {
		b := batchOf("a", uint64(1+256*i), 256)
		pushed = append(pushed, b)
		if err := q.pushBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	q.PushControl(Event{Data: []byte("loss"), Schema: LossSchema})
	got, err := q.popBatch(ctx, 256, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Kind() != KindLoss {
		t.Fatalf("first batch: %d events; want the loss record alone", len(got))
	}
	for i, b := range pushed {
		got, err := q.popBatch(ctx, 256, 0, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 256 || &got[0] != &b[0] {
			t.Fatalf("batch %d: %d events, copied: a segment was cut", i+1, len(got))
		}
	}
}
