package wasmstages_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmstages"
)

// streamSource emits sequenced events in small batches until its context
// ends, counting what it has emitted.
type streamSource struct {
	emitted atomic.Uint64
}

func (s *streamSource) Name() string { return "open" }

func (s *streamSource) Run(ctx context.Context, out pipeline.Emitter) error {
	batch := make([]pipeline.Event, 0, 16)
	for seq := uint64(1); ctx.Err() == nil; {
		batch = batch[:0]
		for range 16 {
			batch = append(batch, pipeline.Event{Data: openEvent(seq, "cat"), Schema: testSchema, Source: "open", Seq: seq})
			seq++
		}
		if err := out.Emit(ctx, batch); err != nil {
			return nil // cancelled while blocked: the queue counted it
		}
		s.emitted.Add(uint64(len(batch)))
		time.Sleep(50 * time.Microsecond)
	}
	return nil
}

// memSink keeps what it is given.
type memSink struct {
	name string

	mu     sync.Mutex
	events []pipeline.Event
}

func (s *memSink) Name() string { return s.name }
func (s *memSink) Write(_ context.Context, batch []pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range batch {
		if ev.Kind() == pipeline.KindEvent {
			s.events = append(s.events, ev)
		}
	}
	return nil
}
func (s *memSink) Close(context.Context) error { return nil }
func (s *memSink) snapshot() []pipeline.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// runPipeline builds a pipeline from spec and runs it until stop, which
// fails the test if Run returns an error. stop also runs when the test
// ends, so that no Run outlives it.
func runPipeline(t *testing.T, spec pipeline.Spec) (stop func()) {
	t.Helper()
	p, err := pipeline.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx, 30*time.Second) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-ran; err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestSwapUnderStream swaps a stage's module while events stream through
// it, and checks that every event arrives exactly once, that the versions
// change once (between two batches), and that every event emitted after
// Swap returned went through the new version.
func TestSwapUnderStream(t *testing.T) {
	reg := pipeline.NewRegistry()
	stage := newStage(t, wasmstages.Config{Name: "tag", Module: guest("tag_v1"), Metrics: reg, Workers: 2})
	src, sink := &streamSource{}, &memSink{name: "mem"}
	stop := runPipeline(t, pipeline.Spec{
		Name: "swap", Sources: []pipeline.Source{src}, Stages: []pipeline.Stage{stage}, Sinks: []pipeline.Sink{sink},
		Queue:     pipeline.QueueConfig{Policy: pipeline.Block},
		BatchSize: 64, BatchDelay: time.Millisecond, Metrics: reg,
	})

	waitFor(t, "events before the swap", func() bool { return len(sink.snapshot()) >= 3000 })
	if err := stage.Swap(context.Background(), readGuest(t, "tag_v2")); err != nil {
		t.Fatal(err)
	}
	emittedAtSwap := src.emitted.Load()
	waitFor(t, "events after the swap", func() bool { return len(sink.snapshot()) >= int(emittedAtSwap)+3000 })
	stop()

	got := sink.snapshot()
	total := src.emitted.Load()
	if uint64(len(got)) != total {
		t.Errorf("sink got %d events, the source emitted %d", len(got), total)
	}
	seen := make(map[uint64]bool, len(got))
	switches := 0
	prev := "1"
	var lastV1, firstV2 uint64
	for i, ev := range got {
		if seen[ev.Seq] {
			t.Fatalf("seq %d delivered twice", ev.Seq)
		}
		seen[ev.Seq] = true
		if want := uint64(i + 1); ev.Seq != want {
			t.Fatalf("event %d has seq %d, want %d (order)", i, ev.Seq, want)
		}
		v := fmt.Sprint(decode(t, ev.Data)["stage_version"])
		if v != prev {
			switches++
			prev = v
		}
		switch v {
		case "1":
			lastV1 = ev.Seq
		case "2":
			if firstV2 == 0 {
				firstV2 = ev.Seq
			}
		default:
			t.Fatalf("seq %d: stage_version %q", ev.Seq, v)
		}
	}
	for s := uint64(1); s <= total; s++ {
		if !seen[s] {
			t.Fatalf("seq %d lost", s)
		}
	}
	if switches != 1 || lastV1 == 0 || firstV2 != lastV1+1 {
		t.Errorf("versions switched %d times (last v1 seq %d, first v2 seq %d); want one switch from 1 to 2", switches, lastV1, firstV2)
	}
	if lastV1 > emittedAtSwap {
		t.Errorf("seq %d went through version 1, but only %d events had been emitted when Swap returned", lastV1, emittedAtSwap)
	}
	m := reg.Component("stage", "tag")
	if m.Received.Value() != total || m.Sent.Value() != total || m.Errors.Value() != 0 {
		t.Errorf("stage counted received %d sent %d errors %d; want %d, %d, 0", m.Received.Value(), m.Sent.Value(), m.Errors.Value(), total, total)
	}
}

// TestFailingGuestInPipeline runs a guest that traps on every second batch
// of each instance through a pipeline with a dead-letter sink: the
// pipeline keeps running, every event ends up in exactly one of the sinks,
// and the traps are counted.
func TestFailingGuestInPipeline(t *testing.T) {
	reg := pipeline.NewRegistry()
	main, dl := &memSink{name: "main"}, &memSink{name: "dead"}
	stage := newStage(t, wasmstages.Config{Name: "trap", Module: guest("trap"), Params: map[string]any{"trap_after": 1},
		OnError: "dead_letter", DeadLetter: dl, Metrics: reg})
	src := &streamSource{}
	stop := runPipeline(t, pipeline.Spec{
		Name: "traps", Sources: []pipeline.Source{src}, Stages: []pipeline.Stage{stage}, Sinks: []pipeline.Sink{main},
		Queue: pipeline.QueueConfig{Policy: pipeline.Block}, BatchSize: 32, Metrics: reg,
	})
	waitFor(t, "traps", func() bool { return len(dl.snapshot()) >= 500 && len(main.snapshot()) >= 500 })
	stop()
	total := src.emitted.Load()
	seqs := map[uint64]int{}
	for _, ev := range append(main.snapshot(), dl.snapshot()...) {
		seqs[ev.Seq]++
	}
	for s := uint64(1); s <= total; s++ {
		if seqs[s] != 1 {
			t.Fatalf("seq %d reached the sinks %d times, want once", s, seqs[s])
		}
	}
	snap := reg.Snapshot()
	// The instance of the last trap is replaced by the next batch, if any.
	traps := snap.Get(pipeline.MetricStageErrors, "component", "stage", "name", "trap", "kind", wasmstages.KindTrap)
	if r := snap.Get(wasmstages.MetricInstanceRestarts, "component", "stage", "name", "trap"); traps == 0 || (r != traps && r != traps-1) {
		t.Errorf("traps %v, restarts %v; want a restart per trap", traps, r)
	}
	if got := reg.Component("stage", "trap").Dropped(pipeline.ReasonDeadLetter).Value(); got != uint64(len(dl.snapshot())) {
		t.Errorf("dropped{dead_letter} = %d, dead-letter sink got %d", got, len(dl.snapshot()))
	}
}
