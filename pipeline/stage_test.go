package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// policyStage fails every batch holding an event whose seq is a multiple of
// 50, with a StageError of kind "trap", and keeps every event otherwise. It
// records the seqs of the batches it failed.
type policyStage struct {
	action ErrorAction
	dl     Sink

	failed  []uint64
	onError int // calls of OnError
}

func (s *policyStage) Name() string { return "policy" }
func (s *policyStage) OnError() (ErrorAction, Sink) {
	s.onError++
	return s.action, s.dl
}
func (s *policyStage) Close(ctx context.Context) error { return nil }
func (s *policyStage) Process(_ context.Context, in, out []Event) ([]Event, error) {
	if slices.ContainsFunc(in, func(ev Event) bool { return ev.Seq%50 == 0 }) {
		s.failed = append(s.failed, seqs(in)...)
		// Output appended before the failure must not leak downstream.
		out = append(out, in[0])
		return out, &StageError{Kind: "trap", Err: errors.New("unreachable executed")}
	}
	return append(out, in...), nil
}

func TestStageErrorPolicies(t *testing.T) {
	const n = 500
	tests := []struct {
		name   string
		action ErrorAction
		// deadLetterIsSink makes the dead-letter sink the pipeline's own.
		deadLetterIsSink bool
	}{
		{name: "pass", action: ErrorPass},
		{name: "drop", action: ErrorDrop},
		{name: "dead_letter", action: ErrorDeadLetter},
		{name: "dead_letter_to_own_sink", action: ErrorDeadLetter, deadLetterIsSink: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := NewRegistry()
			gen := newGen("gen", n, 10)
			gen.finite = true
			sink, dl := &recSink{name: "k"}, &recSink{name: "dl"}
			st := &policyStage{action: tt.action}
			if tt.action == ErrorDeadLetter {
				st.dl = dl
				if tt.deadLetterIsSink {
					st.dl = sink
				}
			}
			p, err := New(Spec{Name: "p", Sources: []Source{gen}, Stages: []Stage{st}, Sinks: []Sink{sink},
				BatchSize: 10, BatchDelay: -1, Metrics: reg})
			if err != nil {
				t.Fatal(err)
			}
			if err := waitRun(t, runAsync(context.Background(), p, 10*time.Second), 30*time.Second); err != nil {
				t.Fatal(err)
			}
			if len(st.failed) == 0 {
				t.Fatal("no batch failed; the test proves nothing")
			}
			if st.onError != 1 {
				t.Errorf("the pipeline asked for the error policy %d times, want once", st.onError)
			}
			failed := uint64(len(st.failed))
			m := reg.Component("stage", "policy")
			checkInvariant(t, reg, [2]string{"stage", "policy"}, [2]string{"sink", "k"}, [2]string{"sink", "dl"})
			snap := reg.Snapshot()
			batches := snap.Get(MetricStageBatches, "component", "stage", "name", "policy")
			if got := snap.Get(MetricStageErrors, "component", "stage", "name", "policy", "kind", "trap"); got == 0 || got != float64(m.Errors.Value()) {
				t.Errorf("errors{kind=trap} = %v, errors total %d; want the same, non-zero", got, m.Errors.Value())
			}
			if got := snap.Get(MetricStageDuration+"_count", "component", "stage", "name", "policy"); got != batches || batches == 0 {
				t.Errorf("duration count = %v, batches = %v; want one observation per batch", got, batches)
			}

			events, losses := sink.split()
			dlEvents, _ := dl.split()
			var wantSink, wantDL []uint64
			for s := uint64(1); s <= n; s++ {
				isFailed := slices.Contains(st.failed, s)
				switch {
				case !isFailed || tt.action == ErrorPass:
					wantSink = append(wantSink, s)
				case tt.action == ErrorDeadLetter && tt.deadLetterIsSink:
					wantSink = append(wantSink, s)
				case tt.action == ErrorDeadLetter:
					wantDL = append(wantDL, s)
				}
			}
			gotSink := seqs(events)
			slices.Sort(gotSink) // the dead-letter route may interleave with the main one
			if diff := cmp.Diff(wantSink, gotSink, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("sink seqs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantDL, seqs(dlEvents), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("dead-letter seqs (-want +got):\n%s", diff)
			}

			var lossCount uint64
			for _, l := range losses {
				ls := summarize(t, l)
				if ls.Component == "stage.policy" {
					lossCount += ls.Count
					if ls.Reason != ReasonStageError {
						t.Errorf("loss record reason %q, want %q", ls.Reason, ReasonStageError)
					}
				}
			}
			switch tt.action {
			case ErrorPass:
				if m.Sent.Value() != n || m.DroppedTotal() != 0 {
					t.Errorf("pass: sent %d dropped %d, want %d and 0", m.Sent.Value(), m.DroppedTotal(), n)
				}
			case ErrorDrop:
				if got := m.Dropped(ReasonStageError).Value(); got != failed {
					t.Errorf("dropped{stage_error} = %d, want %d", got, failed)
				}
				if lossCount != failed {
					t.Errorf("loss records count %d stage_error losses, want %d", lossCount, failed)
				}
			case ErrorDeadLetter:
				if got := m.Dropped(ReasonDeadLetter).Value(); got != failed {
					t.Errorf("dropped{dead_letter} = %d, want %d", got, failed)
				}
				if lossCount != 0 {
					t.Errorf("dead-lettered events produced loss records of %d events", lossCount)
				}
			}
			sink.mu.Lock()
			closed := sink.closed
			sink.mu.Unlock()
			if closed != 1 {
				t.Errorf("sink closed %d times, want once", closed)
			}
			if tt.action == ErrorDeadLetter && !tt.deadLetterIsSink && dl.closed != 1 {
				t.Errorf("dead-letter sink closed %d times, want once", dl.closed)
			}
		})
	}
}

func TestDeadLetterWithoutSink(t *testing.T) {
	_, err := New(Spec{Name: "p", Sources: []Source{newGen("g", 1, 1)}, Sinks: []Sink{&recSink{name: "k"}},
		Stages: []Stage{&policyStage{action: ErrorDeadLetter}}})
	if err == nil {
		t.Fatal("New accepted a dead-letter policy without a sink")
	}
}

func TestPlainStageErrorKind(t *testing.T) {
	reg := NewRegistry()
	gen := newGen("gen", 20, 10)
	gen.finite = true
	p, err := New(Spec{Name: "p", Sources: []Source{gen}, Stages: []Stage{&flakyStage{}}, Sinks: []Sink{&recSink{name: "k"}},
		BatchSize: 10, BatchDelay: -1, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	_ = waitRun(t, runAsync(context.Background(), p, 10*time.Second), 30*time.Second)
	if got := reg.Snapshot().Get(MetricStageErrors, "component", "stage", "name", "flaky", "kind", "error"); got == 0 {
		t.Error("a plain error was not counted as kind \"error\"")
	}
}

func TestStageErrorKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&StageError{Kind: "trap", Err: errors.New("unreachable")}, "trap"},
		{fmt.Errorf("process: %w", &StageError{Kind: "timeout", Err: errors.New("deadline")}), "timeout"},
		{&StageError{Err: errors.New("no kind")}, "error"},
		{errors.New("plain"), "error"},
	} {
		if got := StageErrorKind(c.err); got != c.want {
			t.Errorf("StageErrorKind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// tickStage emits one event per tick, numbered, and records the ticks.
type tickStage struct {
	interval time.Duration
	fail     bool

	mu    sync.Mutex
	ticks int
}

func (s *tickStage) Name() string                { return "ticker" }
func (s *tickStage) Close(context.Context) error { return nil }
func (s *tickStage) TickInterval() time.Duration { return s.interval }
func (s *tickStage) Process(_ context.Context, in, out []Event) ([]Event, error) {
	return append(out, in...), nil
}
func (s *tickStage) Tick(_ context.Context, _ time.Time, out []Event) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ticks++
	out = append(out, Event{Data: []byte{0x80}, Source: "ticker", Seq: uint64(s.ticks)})
	if s.fail {
		return out, &StageError{Kind: "timeout", Err: errors.New("tick deadline")}
	}
	return out, nil
}

// countStage counts what it sees and passes it on.
type countStage struct {
	mu   sync.Mutex
	seen int
}

func (s *countStage) Name() string                { return "counter" }
func (s *countStage) Close(context.Context) error { return nil }
func (s *countStage) Process(_ context.Context, in, out []Event) ([]Event, error) {
	s.mu.Lock()
	s.seen += len(in)
	s.mu.Unlock()
	return append(out, in...), nil
}

func TestTicks(t *testing.T) {
	t.Run("periodic", func(t *testing.T) {
		reg := NewRegistry()
		gen := newGen("gen", 0, 1) // no events: the timer must fire on an idle stream
		ticker, counter, sink := &tickStage{interval: 5 * time.Millisecond}, &countStage{}, &recSink{name: "k"}
		p, err := New(Spec{Name: "p", Sources: []Source{gen}, Stages: []Stage{ticker, counter}, Sinks: []Sink{sink}, Metrics: reg})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := runAsync(ctx, p, 10*time.Second)
		waitFor(t, "three ticks to reach the sink", 20*time.Second, func() bool { return sink.count() >= 3 })
		cancel()
		if err := waitRun(t, ran, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		ticker.mu.Lock()
		ticks := ticker.ticks
		ticker.mu.Unlock()
		if got := sink.count(); got != ticks {
			t.Errorf("sink got %d tick events, the stage ticked %d times (the last at shutdown)", got, ticks)
		}
		if counter.seen != ticks {
			t.Errorf("the later stage saw %d tick events, want %d", counter.seen, ticks)
		}
		checkInvariant(t, reg, [2]string{"stage", "ticker"}, [2]string{"stage", "counter"}, [2]string{"sink", "k"})
		if got := reg.Snapshot().Get(MetricStageTicks, "component", "stage", "name", "ticker"); int(got) != ticks {
			t.Errorf("ticks counter = %v, want %d", got, ticks)
		}
	})
	t.Run("final tick at shutdown", func(t *testing.T) {
		gen := newGen("gen", 30, 10)
		gen.finite = true
		ticker, sink := &tickStage{interval: time.Hour, fail: true}, &recSink{name: "k"}
		reg := NewRegistry()
		p, err := New(Spec{Name: "p", Sources: []Source{gen}, Stages: []Stage{ticker}, Sinks: []Sink{sink}, Metrics: reg})
		if err != nil {
			t.Fatal(err)
		}
		if err := waitRun(t, runAsync(context.Background(), p, 10*time.Second), 30*time.Second); err != nil {
			t.Fatal(err)
		}
		events, _ := sink.split()
		var fromTick []Event
		for _, ev := range events {
			if ev.Source == "ticker" {
				fromTick = append(fromTick, ev)
			}
		}
		if len(fromTick) != 1 || len(events) != 31 {
			t.Errorf("sink got %d events, %d of them from ticks; want 30 and the one final tick", len(events), len(fromTick))
		}
		// A failing tick still delivers what it produced, and is counted.
		if got := reg.Snapshot().Get(MetricStageErrors, "component", "stage", "name", "ticker", "kind", "timeout"); got != 1 {
			t.Errorf("errors{kind=timeout} = %v, want 1", got)
		}
	})
}

func TestParseErrorAction(t *testing.T) {
	for _, a := range []ErrorAction{ErrorPass, ErrorDrop, ErrorDeadLetter} {
		got, err := ParseErrorAction(a.String())
		if err != nil || got != a {
			t.Errorf("ParseErrorAction(%q) = %v, %v", a.String(), got, err)
		}
	}
	if _, err := ParseErrorAction("retry"); err == nil {
		t.Error("ParseErrorAction accepted retry")
	}
	if got := fmt.Sprint(ErrorAction(9)); got != "error_action(9)" {
		t.Errorf("String of an unknown action = %q", got)
	}
}
