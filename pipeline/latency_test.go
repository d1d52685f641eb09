package pipeline

import (
	"context"
	"testing"
	"time"
)

// agedSource emits n events whose Time lies age in the past, as a reader
// does with a kernel timestamp, then waits for cancellation.
type agedSource struct {
	n    int
	age  time.Duration
	done chan struct{}
}

func (s *agedSource) Name() string { return "aged" }

func (s *agedSource) Run(ctx context.Context, out Emitter) error {
	batch := make([]Event, s.n)
	for i := range batch {
		batch[i] = Event{Data: []byte{0x80}, Source: "aged", Seq: uint64(i + 1), Time: time.Now().Add(-s.age).UnixNano()}
	}
	err := out.Emit(ctx, batch)
	close(s.done)
	<-ctx.Done()
	return err
}

// TestSinkLatency checks that every delivered event with a Time is
// observed once in its sink's latency histogram, from that Time (so never
// below the age it had at the source), and that loss records, which have
// no Time, are not.
func TestSinkLatency(t *testing.T) {
	const n, age = 300, 40 * time.Millisecond
	reg := NewRegistry()
	src := &agedSource{n: n, age: age, done: make(chan struct{})}
	sink := &recSink{name: "out"}
	p, err := New(Spec{Name: "p", Sources: []Source{src}, Sinks: []Sink{sink}, Metrics: reg, BatchSize: 64, LossInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.loss.Add("aged", "g", "source.aged", ReasonKernel, 5, 0, 0) // a loss record in the stream
	ctx, cancel := context.WithCancel(context.Background())
	ran := runAsync(ctx, p, 10*time.Second)
	<-src.done
	waitFor(t, "the events to reach the sink", 10*time.Second, func() bool {
		events, losses := sink.split()
		return len(events) == n && len(losses) > 0
	})
	cancel()
	if err := waitRun(t, ran, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	snap := reg.Snapshot()
	labels := []string{"component", "sink", "name", "out"}
	if got := snap.Get(MetricSinkLatency+"_count", labels...); got != n {
		t.Errorf("latency observations = %v, want %d (the events, not the loss records)", got, n)
	}
	// The buckets at or below 30ms are empty: every event was 40ms old
	// before it was even emitted.
	if got := snap.Get(MetricSinkLatency+"_bucket", append(labels, "le", "0.03")...); got != 0 {
		t.Errorf("latency bucket le=0.03 = %v, want 0", got)
	}
	if got := snap.Get(MetricSinkLatency+"_bucket", append(labels, "le", "+Inf")...); got != n {
		t.Errorf("latency bucket le=+Inf = %v, want %d", got, n)
	}
	if sum := snap.Get(MetricSinkLatency+"_sum", labels...); sum < n*age.Seconds() {
		t.Errorf("latency sum = %vs, want at least %vs", sum, n*age.Seconds())
	}
}
