package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestWriteLossCountsOnlyTheLost: a sink that loses some events of a batch
// (every third, for two different reasons) gets exactly those counted as
// dropped by reason and reported in loss records; the rest count as sent.
func TestWriteLossCountsOnlyTheLost(t *testing.T) {
	const n = 300
	reg := NewRegistry()
	gen := newGen("gen", n, 30)
	sink := &lossySink{recSink: &recSink{name: "k"}}
	p, err := New(Spec{Name: "p", Sources: []Source{gen}, Sinks: []Sink{sink}, BatchSize: 30, Metrics: reg, LossInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := runAsync(ctx, p, 10*time.Second)
	reported := func() uint64 {
		_, losses := sink.split()
		var n uint64
		for _, l := range losses {
			s := summarize(t, l)
			if s.Reason != "spool_full" && s.Reason != "encode_error" {
				t.Errorf("loss record reason %q", s.Reason)
			}
			n += s.Count
		}
		return n
	}
	waitFor(t, "loss records for every lost event", 20*time.Second, func() bool { return reported() >= 128 }) // 100 multiples of 3, 28 of 7 but not of 3
	cancel()
	if err := waitRun(t, ran, 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	m := reg.Component("sink", "k")
	var full, bad uint64
	for s := uint64(1); s <= n; s++ {
		switch {
		case s%3 == 0:
			full++
		case s%7 == 0:
			bad++
		}
	}
	if got := m.Dropped("spool_full").Value(); got != full {
		t.Errorf("dropped spool_full = %d, want %d", got, full)
	}
	if got := m.Dropped("encode_error").Value(); got != bad {
		t.Errorf("dropped encode_error = %d, want %d", got, bad)
	}
	if got := m.Dropped(ReasonSinkError).Value(); got != 0 {
		t.Errorf("dropped sink_error = %d, want 0 (every loss was named)", got)
	}
	events, _ := sink.split()
	if uint64(len(events)) != n-full-bad {
		t.Errorf("sink kept %d events, want %d", len(events), n-full-bad)
	}
	if got := reported(); got != full+bad {
		t.Errorf("loss records report %d events, want %d", got, full+bad)
	}
	checkInvariant(t, reg, [2]string{"sink", "k"})
}

// lossySink loses every third event (spool_full) and of the others every
// seventh (encode_error), keeping the rest and every loss record.
type lossySink struct{ *recSink }

func (s *lossySink) Write(ctx context.Context, batch []Event) error {
	var full, bad, kept []Event
	for _, ev := range batch {
		switch {
		case ev.Kind() == KindLoss:
			kept = append(kept, ev)
		case ev.Seq%3 == 0:
			full = append(full, ev)
		case ev.Seq%7 == 0:
			bad = append(bad, ev)
		default:
			kept = append(kept, ev)
		}
	}
	if err := s.recSink.Write(ctx, kept); err != nil {
		return err
	}
	if len(full)+len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("sink k: %w", errors.Join(
		&WriteLoss{Reason: "spool_full", Events: full, Err: errors.New("spool full")},
		&WriteLoss{Reason: "encode_error", Events: bad, Err: errors.New("bad event")},
	))
}

// batchSink asks for its own batch size.
type batchSink struct {
	*recSink
	size  int
	delay time.Duration
}

func (b *batchSink) WriteBatch() (int, time.Duration) { return b.size, b.delay }

// TestBatchingSinkGetsItsOwnBatches: the pipeline hands batches of 10
// events to its stages, but a BatchingSink asking for 100 with a long delay
// gets whole batches of 100, and the partial tail once the queue closes.
func TestBatchingSinkGetsItsOwnBatches(t *testing.T) {
	gen := newGen("gen", 250, 10)
	gen.finite = true
	rec := &recSink{name: "k"}
	var sizes []int
	rec.fail = func(batch []Event) error {
		sizes = append(sizes, len(batch))
		return nil
	}
	sink := &batchSink{recSink: rec, size: 100, delay: time.Minute}
	p, err := New(Spec{Name: "p", Sources: []Source{gen}, Sinks: []Sink{sink}, BatchSize: 10, LossInterval: time.Hour,
		Queue: QueueConfig{MaxEvents: 1000, MaxBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitRun(t, runAsync(context.Background(), p, 10*time.Second), 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff([]int{100, 100, 50}, sizes); diff != "" {
		t.Errorf("write sizes (-want +got):\n%s", diff)
	}
}

// lossySource reports kernel losses before it emits anything, then emits n
// events, then waits for cancellation.
type lossySource struct {
	name   string
	kernel uint64
	n      int
}

func (s *lossySource) Name() string { return s.name }

func (s *lossySource) Run(ctx context.Context, out Emitter) error {
	out.(LossReporter).ReportLoss(s.name, "g", ReasonKernel, s.kernel)
	if err := out.Emit(ctx, mkEvents(s.name, 1, s.n, 16)); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// TestLossRecordsOutliveFailedWrites: the writes that carry the first loss
// records fail (the sink is down). The loss records are kept and written
// again ahead of the next batch, so the stream still learns of the kernel
// losses they report, and of the events the failed writes lost.
func TestLossRecordsOutliveFailedWrites(t *testing.T) {
	reg := NewRegistry()
	var failures atomic.Int32
	sink := &recSink{name: "k", fail: func(batch []Event) error {
		if slices.ContainsFunc(batch, func(ev Event) bool { return ev.Kind() == KindLoss }) && failures.Add(1) <= 3 {
			return errors.New("sink down")
		}
		return nil
	}}
	src := &lossySource{name: "src", kernel: 50, n: 20}
	p, err := New(Spec{Name: "p", Sources: []Source{src}, Sinks: []Sink{sink}, Metrics: reg, LossInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := runAsync(ctx, p, 10*time.Second)
	kernelReported := func() uint64 {
		_, losses := sink.split()
		var n uint64
		for _, l := range losses {
			if s := summarize(t, l); s.Reason == ReasonKernel {
				n += s.Count
			}
		}
		return n
	}
	waitFor(t, "the kernel losses reported after the failed writes", 20*time.Second, func() bool { return kernelReported() >= 50 && failures.Load() > 3 })
	cancel()
	if err := waitRun(t, ran, 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := kernelReported(); got != 50 {
		t.Errorf("loss records report %d kernel losses, want 50 (once each)", got)
	}
	if got := reg.Counter(MetricLossRecordsLost, "", "component", "sink", "name", "k").Value(); got != 0 {
		t.Errorf("%s = %d, want 0", MetricLossRecordsLost, got)
	}
	checkInvariant(t, reg, [2]string{"sink", "k"})
}

// TestLossRecordsOfADeadSinkAreCounted: a sink that never writes keeps its
// loss records until shutdown, then counts them in
// sluice_loss_records_lost_total, and as dropped.
func TestLossRecordsOfADeadSinkAreCounted(t *testing.T) {
	reg := NewRegistry()
	sink := &recSink{name: "k", fail: func([]Event) error { return errors.New("sink down") }}
	p, err := New(Spec{Name: "p", Sources: []Source{&lossySource{name: "src", kernel: 5, n: 20}}, Sinks: []Sink{sink}, Metrics: reg, LossInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := runAsync(ctx, p, 10*time.Second)
	m := reg.Component("sink", "k")
	waitFor(t, "failed writes", 20*time.Second, func() bool { return m.Errors.Value() >= 3 })
	cancel()
	if err := waitRun(t, ran, 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := reg.Counter(MetricLossRecordsLost, "", "component", "sink", "name", "k").Value(); got == 0 {
		t.Errorf("%s = 0; want the loss records the dead sink could not write", MetricLossRecordsLost)
	}
	checkInvariant(t, reg, [2]string{"sink", "k"})
}
