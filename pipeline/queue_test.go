package pipeline

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func newTestQueue(t testing.TB, cfg QueueConfig) (*Queue, *ComponentMetrics, *LossTracker) {
	t.Helper()
	m := NewRegistry().Component("pipeline", "t")
	loss := NewLossTracker()
	q, err := NewQueue("pipeline.t", cfg, m, loss)
	if err != nil {
		t.Fatal(err)
	}
	return q, m, loss
}

func flushSummaries(t *testing.T, loss *LossTracker) []lossSummary {
	t.Helper()
	var out []lossSummary
	for _, ev := range loss.Flush(time.Now(), "h") {
		out = append(out, summarize(t, ev))
	}
	return out
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []Policy{Block, DropNewest, DropOldest} {
		got, err := ParsePolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	if _, err := ParsePolicy("drop"); err == nil {
		t.Error("ParsePolicy(\"drop\") succeeded, want an error")
	}
}

func TestQueuePolicies(t *testing.T) {
	tests := []struct {
		name       string
		policy     Policy
		wantErr    error
		wantQueued []uint64
		wantLoss   []lossSummary
	}{
		{
			name:       "block",
			policy:     Block,
			wantErr:    context.DeadlineExceeded,
			wantQueued: seqRange(1, 4),
			wantLoss:   []lossSummary{{Source: "s", Gadget: "trace_test", Component: "pipeline.t", Reason: ReasonShutdown, Count: 2, SeqFirst: 5, SeqLast: 6}},
		},
		{
			name:       "drop_newest",
			policy:     DropNewest,
			wantQueued: seqRange(1, 4),
			wantLoss:   []lossSummary{{Source: "s", Gadget: "trace_test", Component: "pipeline.t", Reason: ReasonQueueFull, Count: 2, SeqFirst: 5, SeqLast: 6}},
		},
		{
			name:       "drop_oldest",
			policy:     DropOldest,
			wantQueued: seqRange(3, 6),
			wantLoss:   []lossSummary{{Source: "s", Gadget: "trace_test", Component: "pipeline.t", Reason: ReasonQueueFull, Count: 2, SeqFirst: 1, SeqLast: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, m, loss := newTestQueue(t, QueueConfig{MaxEvents: 4, Policy: tt.policy})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			err := q.Push(ctx, mkEvents("s", 1, 6, 8))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Push error = %v, want %v", err, tt.wantErr)
			}
			got, err := q.Pop(context.Background(), nil, 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantQueued, seqs(got)); diff != "" {
				t.Errorf("queued seqs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLoss, flushSummaries(t, loss)); diff != "" {
				t.Errorf("loss (-want +got):\n%s", diff)
			}
			if r, d := m.Received.Value(), m.DroppedTotal(); r != 6 || d != 2 {
				t.Errorf("received %d dropped %d, want 6 and 2", r, d)
			}
			if d := m.Dropped(tt.wantLoss[0].Reason).Value(); d != 2 {
				t.Errorf("dropped(%s) = %d, want 2", tt.wantLoss[0].Reason, d)
			}
		})
	}
}

func TestQueueByteLimit(t *testing.T) {
	size := (&Event{Data: make([]byte, 10)}).Size()
	for _, tt := range []struct {
		policy Policy
		want   []uint64
	}{
		{DropNewest, seqRange(1, 3)},
		{DropOldest, seqRange(3, 5)},
	} {
		t.Run(tt.policy.String(), func(t *testing.T) {
			q, m, _ := newTestQueue(t, QueueConfig{MaxEvents: 100, MaxBytes: 3 * size, Policy: tt.policy})
			if err := q.Push(context.Background(), mkEvents("s", 1, 5, 10)); err != nil {
				t.Fatal(err)
			}
			got, _ := q.Pop(context.Background(), nil, 100, 0)
			if diff := cmp.Diff(tt.want, seqs(got)); diff != "" {
				t.Errorf("queued seqs (-want +got):\n%s", diff)
			}
			if d := m.Dropped(ReasonQueueFull).Value(); d != 2 {
				t.Errorf("dropped = %d, want 2", d)
			}
		})
	}
}

func TestQueueOversizedEventEntersEmptyQueue(t *testing.T) {
	q, m, _ := newTestQueue(t, QueueConfig{MaxBytes: 100, Policy: DropNewest})
	if err := q.Push(context.Background(), mkEvents("s", 1, 2, 500)); err != nil {
		t.Fatal(err)
	}
	if q.Len() != 1 || m.Dropped(ReasonQueueFull).Value() != 1 {
		t.Errorf("len %d dropped %d, want 1 and 1", q.Len(), m.Dropped(ReasonQueueFull).Value())
	}
}

func TestQueueBlockWaitsForRoom(t *testing.T) {
	q, m, _ := newTestQueue(t, QueueConfig{MaxEvents: 4, Policy: Block})
	done := make(chan error, 1)
	go func() { done <- q.Push(context.Background(), mkEvents("s", 1, 6, 8)) }()
	waitFor(t, "the queue to fill", 5*time.Second, func() bool { return q.Len() == 4 })
	select {
	case err := <-done:
		t.Fatalf("Push returned %v on a full queue, want it to block", err)
	case <-time.After(20 * time.Millisecond):
	}
	first, err := q.Pop(context.Background(), nil, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Push: %v", err)
	}
	rest, _ := q.Pop(context.Background(), nil, 10, 0)
	if diff := cmp.Diff(seqRange(1, 6), append(seqs(first), seqs(rest)...)); diff != "" {
		t.Errorf("seqs (-want +got):\n%s", diff)
	}
	if m.DroppedTotal() != 0 {
		t.Errorf("dropped %d, want 0", m.DroppedTotal())
	}
}

func TestQueuePopBatchBySize(t *testing.T) {
	q, _, _ := newTestQueue(t, QueueConfig{})
	q.Push(context.Background(), mkEvents("s", 1, 10, 8))
	start := time.Now()
	got, err := q.Pop(context.Background(), nil, 4, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seqRange(1, 4), seqs(got)); diff != "" {
		t.Errorf("seqs (-want +got):\n%s", diff)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Pop of an available full batch took %s", el)
	}
}

func TestQueuePopBatchByDelay(t *testing.T) {
	const delay = 60 * time.Millisecond
	t.Run("already queued", func(t *testing.T) {
		q, _, _ := newTestQueue(t, QueueConfig{})
		q.Push(context.Background(), mkEvents("s", 1, 1, 8))
		start := time.Now()
		got, err := q.Pop(context.Background(), nil, 100, delay)
		el := time.Since(start)
		if err != nil || len(got) != 1 {
			t.Fatalf("Pop = %d events, %v; want 1, nil", len(got), err)
		}
		if el < delay || el > 50*delay {
			t.Errorf("Pop took %s, want about %s", el, delay)
		}
	})
	t.Run("counted from first arrival", func(t *testing.T) {
		q, _, _ := newTestQueue(t, QueueConfig{})
		const arrival = 100 * time.Millisecond
		start := time.Now()
		go func() {
			time.Sleep(arrival)
			q.Push(context.Background(), mkEvents("s", 1, 1, 8))
		}()
		got, err := q.Pop(context.Background(), nil, 100, delay)
		el := time.Since(start)
		if err != nil || len(got) != 1 {
			t.Fatalf("Pop = %d events, %v; want 1, nil", len(got), err)
		}
		if el < arrival+delay || el > 50*(arrival+delay) {
			t.Errorf("Pop took %s, want about %s", el, arrival+delay)
		}
	})
	t.Run("returns once max arrives", func(t *testing.T) {
		q, _, _ := newTestQueue(t, QueueConfig{})
		go func() {
			q.Push(context.Background(), mkEvents("s", 1, 1, 8))
			time.Sleep(20 * time.Millisecond)
			q.Push(context.Background(), mkEvents("s", 2, 2, 8))
		}()
		start := time.Now()
		got, err := q.Pop(context.Background(), nil, 3, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(seqRange(1, 3), seqs(got)); diff != "" {
			t.Errorf("seqs (-want +got):\n%s", diff)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("Pop took %s, want it to return when the 3rd event arrived", el)
		}
	})
}

// TestQueuePopFullQueue checks that a full queue hands out a partial batch
// at once: waiting for more would only drop or block.
func TestQueuePopFullQueue(t *testing.T) {
	for _, p := range []Policy{Block, DropNewest, DropOldest} {
		t.Run(p.String(), func(t *testing.T) {
			q, _, _ := newTestQueue(t, QueueConfig{MaxEvents: 4, Policy: p})
			go q.Push(context.Background(), mkEvents("s", 1, 6, 8))
			waitFor(t, "the queue to fill", 5*time.Second, func() bool { return q.Len() == 4 })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := q.Pop(ctx, nil, 64, time.Hour)
			if err != nil || len(got) != 4 {
				t.Fatalf("Pop = %d events, %v; want 4 at once", len(got), err)
			}
			q.Close()
		})
	}
}

func TestQueueClose(t *testing.T) {
	q, m, _ := newTestQueue(t, QueueConfig{})
	q.Push(context.Background(), mkEvents("s", 1, 3, 8))
	q.Close()
	if err := q.Push(context.Background(), mkEvents("s", 4, 2, 8)); !errors.Is(err, ErrQueueClosed) {
		t.Errorf("Push after Close = %v, want ErrQueueClosed", err)
	}
	a, errA := q.Pop(context.Background(), nil, 2, time.Hour)
	b, errB := q.Pop(context.Background(), nil, 2, time.Hour)
	_, errC := q.Pop(context.Background(), nil, 2, time.Hour)
	if errA != nil || errB != nil || errC != io.EOF {
		t.Fatalf("Pop errors = %v, %v, %v; want nil, nil, io.EOF", errA, errB, errC)
	}
	if diff := cmp.Diff(seqRange(1, 3), append(seqs(a), seqs(b)...)); diff != "" {
		t.Errorf("seqs (-want +got):\n%s", diff)
	}
	if d := m.Dropped(ReasonShutdown).Value(); d != 2 {
		t.Errorf("dropped(shutdown) = %d, want 2", d)
	}
}

func TestQueueCloseWakesWaiters(t *testing.T) {
	q, m, _ := newTestQueue(t, QueueConfig{MaxEvents: 1, Policy: Block})
	q.Push(context.Background(), mkEvents("s", 1, 1, 8))
	pushed := make(chan error, 1)
	go func() { pushed <- q.Push(context.Background(), mkEvents("s", 2, 3, 8)) }()

	empty, _, _ := newTestQueue(t, QueueConfig{})
	popped := make(chan error, 1)
	go func() {
		_, err := empty.Pop(context.Background(), nil, 10, time.Hour)
		popped <- err
	}()
	time.Sleep(20 * time.Millisecond)
	q.Close()
	empty.Close()
	if err := <-pushed; !errors.Is(err, ErrQueueClosed) {
		t.Errorf("blocked Push = %v, want ErrQueueClosed", err)
	}
	if err := <-popped; err != io.EOF {
		t.Errorf("blocked Pop = %v, want io.EOF", err)
	}
	if d := m.Dropped(ReasonShutdown).Value(); d != 3 {
		t.Errorf("dropped(shutdown) = %d, want 3", d)
	}
}

func TestQueuePopCancelLeavesEvents(t *testing.T) {
	q, _, _ := newTestQueue(t, QueueConfig{})
	q.Push(context.Background(), mkEvents("s", 1, 1, 8))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	got, err := q.Pop(ctx, nil, 10, time.Hour)
	if !errors.Is(err, context.DeadlineExceeded) || len(got) != 0 {
		t.Fatalf("Pop = %d events, %v; want 0, deadline exceeded", len(got), err)
	}
	if q.Len() != 1 {
		t.Errorf("len after cancelled Pop = %d, want 1", q.Len())
	}
}

func TestQueueControlBypassesLimits(t *testing.T) {
	for _, p := range []Policy{Block, DropNewest, DropOldest} {
		t.Run(p.String(), func(t *testing.T) {
			q, m, _ := newTestQueue(t, QueueConfig{MaxEvents: 2, Policy: p})
			q.Push(context.Background(), mkEvents("s", 1, 2, 8))
			q.PushControl(Event{Schema: LossSchema, Source: "s", Data: []byte{0x80}})
			if p != Block {
				q.Push(context.Background(), mkEvents("s", 3, 5, 8))
			}
			got, err := q.Pop(context.Background(), nil, 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 || got[0].Kind() != KindLoss {
				t.Fatalf("popped %+v, want the loss record first then 2 events", got)
			}
			if r, d := m.Received.Value(), m.DroppedTotal(); r != uint64(len(got))+d {
				t.Errorf("received %d != popped %d + dropped %d", r, len(got), d)
			}
		})
	}
}

// TestQueueConcurrent checks that with several producers and consumers every
// event is either delivered once or counted as dropped.
func TestQueueConcurrent(t *testing.T) {
	const producers, perProducer = 4, 5000
	for _, p := range []Policy{Block, DropNewest, DropOldest} {
		t.Run(p.String(), func(t *testing.T) {
			q, m, loss := newTestQueue(t, QueueConfig{MaxEvents: 64, Policy: p})
			var prod sync.WaitGroup
			for i := range producers {
				prod.Go(func() {
					src := string(rune('a' + i))
					for seq := 1; seq <= perProducer; {
						n := 1 + seq%37
						n = min(n, perProducer-seq+1)
						q.Push(context.Background(), mkEvents(src, uint64(seq), n, 8))
						seq += n
					}
				})
			}
			var (
				mu   sync.Mutex
				seen = make(map[[2]any]int)
				cons sync.WaitGroup
			)
			for range 2 {
				cons.Go(func() {
					var buf []Event
					for {
						var err error
						buf, err = q.Pop(context.Background(), buf[:0], 16, time.Millisecond)
						if err != nil {
							return
						}
						mu.Lock()
						for _, ev := range buf {
							seen[[2]any{ev.Source, ev.Seq}]++
						}
						mu.Unlock()
					}
				})
			}
			prod.Wait()
			q.Close()
			cons.Wait()
			for ev, n := range seen {
				if n != 1 {
					t.Fatalf("event %v delivered %d times", ev, n)
				}
			}
			var lost uint64
			for _, s := range flushSummaries(t, loss) {
				lost += s.Count
			}
			total := uint64(producers * perProducer)
			if got := uint64(len(seen)) + m.DroppedTotal(); got != total || m.Received.Value() != total {
				t.Errorf("delivered %d + dropped %d = %d, received %d; want %d", len(seen), m.DroppedTotal(), got, m.Received.Value(), total)
			}
			if lost != m.DroppedTotal() {
				t.Errorf("loss tracker counted %d, metrics %d", lost, m.DroppedTotal())
			}
			if p == Block && m.DroppedTotal() != 0 {
				t.Errorf("block dropped %d", m.DroppedTotal())
			}
		})
	}
}

// BenchmarkQueuePushPop measures the per-event cost of pushing and popping
// batches of 64 on one goroutine.
func BenchmarkQueuePushPop(b *testing.B) {
	q, _, _ := newTestQueue(b, QueueConfig{MaxEvents: 1024})
	batch := mkEvents("s", 1, 64, 100)
	dst := make([]Event, 0, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := q.Push(ctx, batch); err != nil {
			b.Fatal(err)
		}
		var err error
		if dst, err = q.Pop(ctx, dst[:0], 64, 0); err != nil || len(dst) != 64 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/event")
}

// BenchmarkQueueConcurrent measures a producer and a consumer goroutine
// exchanging batches of 64 through a blocking queue.
func BenchmarkQueueConcurrent(b *testing.B) {
	q, _, _ := newTestQueue(b, QueueConfig{MaxEvents: 4096})
	batch := mkEvents("s", 1, 64, 100)
	ctx := context.Background()
	done := make(chan int)
	go func() {
		dst := make([]Event, 0, 256)
		n := 0
		for {
			var err error
			dst, err = q.Pop(ctx, dst[:0], 256, 0)
			if err != nil {
				done <- n
				return
			}
			n += len(dst)
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := q.Push(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	q.Close()
	if n := <-done; n != b.N*64 {
		b.Fatalf("consumed %d, want %d", n, b.N*64)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/event")
}

// TestQueueGaugesSum: queues of one component (a sink fed by two
// pipelines) add to its gauges, which hold their sum.
func TestQueueGaugesSum(t *testing.T) {
	reg := NewRegistry()
	m := reg.Component("sink", "shared")
	ctx := context.Background()
	var qs []*Queue
	for _, name := range []string{"sink.shared", "deadletter.shared"} {
		q, err := NewQueue(name, QueueConfig{MaxEvents: 10, Policy: DropNewest}, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	depth := func() float64 { return reg.Snapshot().Get(MetricQueueLen, "component", "sink", "name", "shared") }
	qs[0].Push(ctx, []Event{{Seq: 1}, {Seq: 2}, {Seq: 3}})
	qs[1].Push(ctx, []Event{{Seq: 1}, {Seq: 2}})
	if got := depth(); got != 5 {
		t.Errorf("depth after pushing 3 and 2 = %v, want 5", got)
	}
	qs[0].Pop(ctx, nil, 2, time.Millisecond)
	if got := depth(); got != 3 {
		t.Errorf("depth after popping 2 = %v, want 3", got)
	}
	qs[0].Pop(ctx, nil, 10, time.Millisecond)
	qs[1].Pop(ctx, nil, 10, time.Millisecond)
	if got := depth(); got != 0 {
		t.Errorf("depth of empty queues = %v, want 0", got)
	}
}
