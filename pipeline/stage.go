package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Stage transforms batches between the edge queue and the sinks. The
// pipeline calls a stage from one goroutine at a time.
type Stage interface {
	Name() string
	// Process appends the stage's output for in to out and returns it. It
	// must not keep in or out after returning. A returned error is counted
	// (by kind, see StageError) and the input batch follows the stage's
	// ErrorPolicy; whatever Process appended to out is discarded.
	Process(ctx context.Context, in []Event, out []Event) ([]Event, error)
	// Close releases the stage; ctx bounds it (the shutdown grace period).
	Close(ctx context.Context) error
}

// ErrorAction says what the pipeline does with the input batch of a stage
// call that failed.
type ErrorAction uint8

const (
	// ErrorPass passes the batch on unchanged, as if the stage were absent.
	ErrorPass ErrorAction = iota
	// ErrorDrop drops the batch (reason "stage_error", with a loss record).
	ErrorDrop
	// ErrorDeadLetter routes the batch to the stage's dead-letter sink
	// instead of the pipeline's sinks (reason "dead_letter" at the stage; a
	// drop on the way to the dead-letter sink is a loss like any other).
	ErrorDeadLetter
)

// ParseErrorAction parses an on_error value: "pass", "drop" or "dead_letter".
func ParseErrorAction(s string) (ErrorAction, error) {
	switch s {
	case "pass":
		return ErrorPass, nil
	case "drop":
		return ErrorDrop, nil
	case "dead_letter":
		return ErrorDeadLetter, nil
	}
	return 0, fmt.Errorf("parse on_error %q: want pass, drop or dead_letter", s)
}

// String returns the config spelling of a.
func (a ErrorAction) String() string {
	switch a {
	case ErrorPass:
		return "pass"
	case ErrorDrop:
		return "drop"
	case ErrorDeadLetter:
		return "dead_letter"
	}
	return fmt.Sprintf("error_action(%d)", uint8(a))
}

// ErrorPolicy is implemented by stages that choose what happens to the batch
// of a failed call; a stage without it passes the batch on (ErrorPass).
// The pipeline asks once, in New.
type ErrorPolicy interface {
	// OnError returns the action and, for ErrorDeadLetter, the sink that
	// receives failed batches. The sink may also be one of the pipeline's
	// sinks or another pipeline's; it must then be safe for concurrent
	// Write, as every shared sink must.
	OnError() (ErrorAction, Sink)
}

// Ticker is implemented by stages that produce events on a timer (windows,
// rate-limit summaries, dedup expiry). The pipeline's worker calls Tick
// between two batches every TickInterval, and once more after the edge queue
// has drained at shutdown, so that a final summary is not lost. The events
// Tick returns enter the stream after the stage: they go through the later
// stages to the sinks. The pipeline asks for TickInterval once, when Run
// starts; 0 turns ticks off.
type Ticker interface {
	TickInterval() time.Duration
	// Tick appends the events of one tick to out and returns it. On error
	// the events appended so far are still used and the error is counted.
	Tick(ctx context.Context, now time.Time, out []Event) ([]Event, error)
}

// StageError is a failed stage call of a known kind ("trap", "timeout",
// ...), which labels sluice_stage_errors_total. Errors of other types count
// as kind "error".
type StageError struct {
	Kind string
	Err  error
}

func (e *StageError) Error() string { return e.Kind + ": " + e.Err.Error() }
func (e *StageError) Unwrap() error { return e.Err }

// StageErrorKind returns the kind of a failed stage call: the Kind of the
// *StageError in err's tree, else "error".
func StageErrorKind(err error) string {
	if se, ok := errors.AsType[*StageError](err); ok && se.Kind != "" {
		return se.Kind
	}
	return "error"
}

// Metric names of the stage-specific series, labelled {name} (the stage)
// and, for errors, {kind}.
const (
	MetricStageBatches  = "sluice_stage_batches_total"
	MetricStageTicks    = "sluice_stage_ticks_total"
	MetricStageErrors   = "sluice_stage_errors_total"
	MetricStageDuration = "sluice_stage_batch_duration_seconds"
	// MetricLossRecordsLost counts, labelled {component, name}, the loss
	// records a component could not deliver: a sink that kept failing
	// while it kept them for later writes.
	MetricLossRecordsLost = "sluice_loss_records_lost_total"
)

// StageErrors returns the counter of stage's failures of kind, the series
// MetricStageErrors{name=stage, kind}. The pipeline counts the calls it
// makes itself; this is for the failures of stage work it does not see (a
// refused module swap, a gadget's module). Safe for concurrent use.
func (r *Registry) StageErrors(stage, kind string) *Counter {
	return r.Counter(MetricStageErrors, "Failed stage calls, by kind.", "name", stage, "kind", kind)
}

// Drop reasons of stages besides ReasonFiltered.
const (
	// ReasonStageError counts the batches of failed calls dropped under
	// ErrorDrop. It is a loss: loss records report it.
	ReasonStageError = "stage_error"
	// ReasonDeadLetter counts the events of failed calls routed to the
	// dead-letter sink. They are not lost (the dead-letter sink's own
	// queue counts any loss on the way), so no loss record reports them.
	ReasonDeadLetter = "dead_letter"
)

type stageRT struct {
	st       Stage
	m        *ComponentMetrics
	filtered *Counter
	buf      []Event

	action     ErrorAction
	deadLetter *sinkRT // for ErrorDeadLetter
	dropErr    *Counter
	dropDL     *Counter
	batches    *Counter
	ticks      *Counter
	duration   *Histogram
	errs       map[string]*Counter // by kind; owned by the worker goroutine
	reg        *Registry

	ticker   Ticker
	interval time.Duration
	nextTick time.Time
}

func newStageRT(reg *Registry, st Stage) *stageRT {
	m := reg.Component("stage", st.Name())
	return &stageRT{
		st:       st,
		m:        m,
		filtered: m.Dropped(ReasonFiltered),
		dropErr:  m.Dropped(ReasonStageError),
		dropDL:   m.Dropped(ReasonDeadLetter),
		batches:  reg.Counter(MetricStageBatches, "Batches a stage was called with.", "name", st.Name()),
		ticks:    reg.Counter(MetricStageTicks, "Timer calls of a stage.", "name", st.Name()),
		duration: reg.Histogram(MetricStageDuration, "Time a stage took per batch.", "name", st.Name()),
		errs:     map[string]*Counter{},
		reg:      reg,
	}
}

func (st *stageRT) countError(err error) {
	kind := StageErrorKind(err)
	c := st.errs[kind]
	if c == nil {
		c = st.reg.StageErrors(st.st.Name(), kind)
		st.errs[kind] = c
	}
	c.Inc()
	st.m.Errors.Inc()
}

func (p *Pipeline) runStage(ctx context.Context, st *stageRT, in []Event, lim *LogLimiter) []Event {
	st.m.Received.Add(uint64(len(in)))
	st.batches.Inc()
	start := time.Now()
	out, err := st.st.Process(ctx, in, st.buf[:0])
	st.duration.Observe(time.Since(start))
	if err != nil {
		return p.stageFailed(ctx, st, in, err, lim)
	}
	// Keep a grown output buffer for the next batch, unless the stage handed
	// back its input, whose backing array the worker reuses for popping.
	if cap(out) > cap(st.buf) && !sameBacking(out, in) {
		st.buf = out[:0]
	}
	n, m := uint64(len(in)), uint64(len(out))
	switch {
	case m < n:
		st.filtered.Add(n - m)
	case m > n:
		// Events a stage adds enter the pipeline there.
		st.m.Received.Add(m - n)
	}
	st.m.Sent.Add(m)
	return out
}

// stageFailed applies the stage's ErrorPolicy to the input of a failed call
// and returns what goes on downstream.
func (p *Pipeline) stageFailed(ctx context.Context, st *stageRT, in []Event, err error, lim *LogLimiter) []Event {
	st.countError(err)
	n := uint64(len(in))
	var what string
	var next []Event
	switch st.action {
	case ErrorDrop:
		st.dropErr.Add(n)
		trackLoss(p.loss, "stage."+st.st.Name(), ReasonStageError, in)
		what = "dropped the batch"
	case ErrorDeadLetter:
		st.dropDL.Add(n)
		// The dead-letter queue counts what it receives and drops.
		_ = st.deadLetter.q.Push(ctx, in)
		what = "sent the batch to the dead-letter sink " + st.deadLetter.sink.Name()
	default:
		st.m.Sent.Add(n)
		next = in
		what = "passed the batch on"
	}
	if ok, suppressed := lim.Allow(time.Now()); ok {
		p.log.Warn("stage failed; "+what, "stage", st.st.Name(), "kind", StageErrorKind(err),
			"events", len(in), "error", err, "suppressed", suppressed)
	}
	return next
}

// startTickers schedules the first tick of every stage that wants timer
// calls one interval from now, and reports whether there is any.
func (p *Pipeline) startTickers(now time.Time) bool {
	found := false
	for _, st := range p.stages {
		t, ok := st.st.(Ticker)
		if !ok {
			continue
		}
		if d := t.TickInterval(); d > 0 {
			st.ticker, st.interval, st.nextTick = t, d, now.Add(d)
			found = true
		}
	}
	return found
}

// nextTick returns the earliest scheduled tick.
func (p *Pipeline) nextTick() time.Time {
	var next time.Time
	for _, st := range p.stages {
		if st.ticker != nil && (next.IsZero() || st.nextTick.Before(next)) {
			next = st.nextTick
		}
	}
	return next
}

// runTicks calls every ticker that is due (all of them when final), runs
// what each produces through the later stages and hands it to the sinks.
func (p *Pipeline) runTicks(ctx context.Context, now time.Time, final bool, lim *LogLimiter) {
	for i, st := range p.stages {
		if st.ticker == nil || (!final && now.Before(st.nextTick)) {
			continue
		}
		// Skip the ticks a long batch made us miss rather than firing them
		// back to back.
		for !st.nextTick.After(now) {
			st.nextTick = st.nextTick.Add(st.interval)
		}
		st.ticks.Inc()
		out, err := st.ticker.Tick(ctx, now, nil)
		if err != nil {
			st.countError(err)
			if ok, suppressed := lim.Allow(time.Now()); ok {
				p.log.Warn("stage tick failed", "stage", st.st.Name(), "kind", StageErrorKind(err), "error", err, "suppressed", suppressed)
			}
		}
		if len(out) == 0 {
			continue
		}
		// Events a tick produces enter the pipeline at the stage.
		st.m.Received.Add(uint64(len(out)))
		st.m.Sent.Add(uint64(len(out)))
		for _, later := range p.stages[i+1:] {
			out = p.runStage(ctx, later, out, lim)
		}
		p.fanOut(ctx, out)
	}
}
