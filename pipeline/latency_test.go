package pipeline

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// agedSource emits n events whose envelope time lies age in the past, as a
// reader writes a kernel timestamp, then waits for cancellation.
type agedSource struct {
	n    int
	age  time.Duration
	done chan struct{}
}

func (s *agedSource) Name() string { return "aged" }

func (s *agedSource) Run(ctx context.Context, out Emitter) error {
	batch := make([]Event, s.n)
	for i := range batch {
		data := codec.AppendMapHeader(nil, 2)
		data = codec.AppendString(codec.AppendString(data, "time"), time.Now().Add(-s.age).UTC().Format(time.RFC3339Nano))
		data = codec.AppendUint(codec.AppendString(data, "seq"), uint64(i+1))
		batch[i] = Event{Data: data, Source: "aged", Seq: uint64(i + 1)}
	}
	err := out.Emit(ctx, batch)
	close(s.done)
	<-ctx.Done()
	return err
}

// TestSinkLatency checks that the delivered events are sampled into their
// sink's latency histogram (up to latencySample per write), from their
// envelope time (so never below the age they had at the source), and that
// loss records are not.
func TestSinkLatency(t *testing.T) {
	const n, age = 300, 40 * time.Millisecond
	reg := NewRegistry()
	src := &agedSource{n: n, age: age, done: make(chan struct{})}
	sink := &recSink{name: "out"}
	p, err := New(Spec{Name: "p", Sources: []Source{src}, Sinks: []Sink{sink}, Metrics: reg, BatchSize: 64, BatchDelay: -1, LossInterval: time.Millisecond})
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
	count := snap.Get(MetricSinkLatency+"_count", labels...)
	sink.mu.Lock()
	writes := sink.writes
	sink.mu.Unlock()
	// Every write of events is sampled: at least one observation per write
	// that held events, at most latencySample, and none for loss records.
	if count < float64(n/64) || count > float64(writes*latencySample) {
		t.Errorf("latency observations = %v for %d events in %d writes, want between %d and %d", count, n, writes, n/64, writes*latencySample)
	}
	// The buckets at or below 30ms are empty: every event was 40ms old
	// before it was even emitted.
	if got := snap.Get(MetricSinkLatency+"_bucket", append(labels, "le", "0.03")...); got != 0 {
		t.Errorf("latency bucket le=0.03 = %v, want 0", got)
	}
	if got := snap.Get(MetricSinkLatency+"_bucket", append(labels, "le", "+Inf")...); got != count {
		t.Errorf("latency bucket le=+Inf = %v, want the count %v", got, count)
	}
	if sum := snap.Get(MetricSinkLatency+"_sum", labels...); sum < count*age.Seconds() {
		t.Errorf("latency sum = %vs, want at least %vs", sum, count*age.Seconds())
	}
}

// TestParseUTC: the envelope time parser agrees with the time package on
// what the decoder writes, and refuses what it cannot read.
func TestParseUTC(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		ns := r.Int64N(4e18) - 1e18 // 1938 to 2096
		text := time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
		got, ok := parseUTC([]byte(text))
		if !ok || got != ns {
			t.Fatalf("parseUTC(%s) = %d, %v; want %d", text, got, ok, ns)
		}
	}
	for _, bad := range []string{"", "2026-12-03T12:00:00", "2026-12-03T12:00:00+01:00", "2026-13-03T12:00:00Z", "2026-12-03T12:00:00.Z", "2026-12-03T12:00:00.1234567890Z", "2026-12-03 12:00:00Z", "20x6-12-03T12:00:00Z"} {
		if _, ok := parseUTC([]byte(bad)); ok {
			t.Errorf("parseUTC(%q) accepted", bad)
		}
	}
	// An offset goes through the time package.
	data := codec.AppendString(codec.AppendString(codec.AppendMapHeader(nil, 1), "time"), "2026-12-03T13:00:00.5+01:00")
	if got, ok := envelopeTime(data); !ok || got != time.Date(2026, 12, 3, 12, 0, 0, 5e8, time.UTC).UnixNano() {
		t.Errorf("envelopeTime with an offset = %d, %v", got, ok)
	}
}
