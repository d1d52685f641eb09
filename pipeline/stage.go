package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// errorActionNames are the config spellings of the actions, in
// ErrorAction order: the one list of them (config's on_error takes
// ErrorActionNames).
var errorActionNames = []string{ErrorPass: "pass", ErrorDrop: "drop", ErrorDeadLetter: "dead_letter"}

// ErrorActionNames returns the config spelling of every action, in order.
func ErrorActionNames() []string { return slices.Clone(errorActionNames) }

// ParseErrorAction parses an on_error value: "pass", "drop" or "dead_letter".
func ParseErrorAction(s string) (ErrorAction, error) {
	if i := slices.Index(errorActionNames, s); i >= 0 {
		return ErrorAction(i), nil
	}
	return 0, fmt.Errorf("parse on_error %q: want %s", s, orList(errorActionNames))
}

// String returns the config spelling of a.
func (a ErrorAction) String() string {
	if int(a) < len(errorActionNames) {
		return errorActionNames[a]
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

// Metric names of the stage-specific series, labelled {component="stage",
// name} and, for errors, {kind}.
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
// MetricStageErrors{component="stage", name=stage, kind}. The pipeline counts the calls it
// makes itself; this is for the failures of stage work it does not see (a
// refused module swap, a gadget's module). Safe for concurrent use.
func (r *Registry) StageErrors(stage, kind string) *Counter {
	return r.Counter(MetricStageErrors, "Failed stage calls, by kind.", "component", "stage", "name", stage, "kind", kind)
}

// ErrorKindsReporter is implemented by stages whose calls fail in known
// ways (a Wasm stage: trap, timeout, oom, ...): the pipeline registers
// their error counters at zero when it starts, beside the kind "error"
// that every stage can report.
type ErrorKindsReporter interface {
	ErrorKinds() []string
}

// StageErrorKinds registers the error counters of stage at zero: "error"
// and kinds. Safe for concurrent use.
func (r *Registry) StageErrorKinds(stage string, kinds ...string) {
	r.StageErrors(stage, "error")
	for _, k := range kinds {
		r.StageErrors(stage, k)
	}
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
	st     Stage
	meter  *StageMeter
	m      *ComponentMetrics
	tapIn  *tapPoint // the batches the stage is called with
	tapOut *tapPoint // what it lets through

	action     ErrorAction
	deadLetter *sinkRT // for ErrorDeadLetter
	dropErr    *Counter
	dropDL     *Counter

	tickInit bool // startTickers has looked at the stage
	ticker   Ticker
	interval time.Duration
	nextTick time.Time
}

func (p *Pipeline) newStageRT(st Stage) *stageRT {
	meter := p.reg.StageMeter(st.Name())
	if ek, ok := st.(ErrorKindsReporter); ok {
		meter.ErrorKinds(ek.ErrorKinds()...)
	}
	return &stageRT{
		st:      st,
		meter:   meter,
		m:       meter.M,
		dropErr: meter.M.Dropped(ReasonStageError),
		dropDL:  meter.M.Dropped(ReasonDeadLetter),
		tapIn:   p.taps.point("stage." + st.Name() + ".in"),
		tapOut:  p.taps.point("stage." + st.Name() + ".out"),
	}
}

// runStage calls st with in and returns what goes on downstream. owned
// says whether the caller owns in's array (see ReleaseBatch), and the
// result whether it owns the returned one: a batch that moves through
// the stages and into a sink's queue is handed over, not copied, where it
// can be. The stage writes its output into a batch from the pool; an
// array of the caller's that no longer carries events goes back to it.
func (p *Pipeline) runStage(ctx context.Context, st *stageRT, in []Event, owned bool, lim *LogLimiter) ([]Event, bool) {
	st.tapIn.offer(in)
	buf := NewBatch(len(in))
	out, err := st.meter.Process(ctx, st.st, in, buf)
	if err != nil {
		ReleaseBatch(buf) // what Process appended is discarded
		out = p.stageFailed(ctx, st, in, err, lim)
		st.tapOut.offer(out)
		if out == nil && owned {
			ReleaseBatch(in)
		}
		return out, owned && out != nil
	}
	st.tapOut.offer(out)
	// A stage keeps neither in nor out (Stage): out's array is the
	// caller's now, whichever it is.
	switch {
	case sameBacking(out, in):
		// The stage handed back its input, or filtered it in place.
		ReleaseBatch(buf)
		if cap(out) == cap(in) { // out starts where in does
			return out, owned
		}
		cp := append(NewBatch(len(out)), out...)
		if owned {
			ReleaseBatch(in)
		}
		return cp, true
	case sameBacking(out, buf):
	default:
		// Grown past buf, or an array of the stage's making.
		ReleaseBatch(buf)
	}
	if owned {
		ReleaseBatch(in)
	}
	return out, true
}

// stageFailed applies the stage's ErrorPolicy to the input of a failed call
// and returns what goes on downstream.
func (p *Pipeline) stageFailed(ctx context.Context, st *stageRT, in []Event, err error, lim *LogLimiter) []Event {
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
// calls and has not been scheduled yet one interval from now.
func (p *Pipeline) startTickers(now time.Time) {
	for _, st := range p.stages {
		if st.tickInit {
			continue
		}
		st.tickInit = true
		t, ok := st.st.(Ticker)
		if !ok {
			continue
		}
		if d := t.TickInterval(); d > 0 {
			st.ticker, st.interval, st.nextTick = t, d, now.Add(d)
		}
	}
}

// nextTick returns the earliest scheduled tick; zero when no stage ticks.
func (p *Pipeline) nextTick() time.Time {
	var next time.Time
	for _, st := range p.stages {
		if st.ticker != nil && (next.IsZero() || st.nextTick.Before(next)) {
			next = st.nextTick
		}
	}
	return next
}

// runTicks calls every ticker that is due (all of them when final).
func (p *Pipeline) runTicks(ctx context.Context, now time.Time, final bool, lim *LogLimiter) {
	for i, st := range p.stages {
		if st.ticker == nil || (!final && now.Before(st.nextTick)) {
			continue
		}
		p.tickStage(ctx, i, now, lim)
	}
}

// tickStage calls the ticker of the i-th stage, runs what it produces
// through the later stages and hands it to the sinks.
func (p *Pipeline) tickStage(ctx context.Context, i int, now time.Time, lim *LogLimiter) {
	st := p.stages[i]
	// Skip the ticks a long batch made us miss rather than firing them
	// back to back.
	for !st.nextTick.After(now) {
		st.nextTick = st.nextTick.Add(st.interval)
	}
	st.meter.ticks.Inc()
	out, err := st.ticker.Tick(ctx, now, nil)
	if err != nil {
		st.meter.CountError(err)
		if ok, suppressed := lim.Allow(time.Now()); ok {
			p.log.Warn("stage tick failed", "stage", st.st.Name(), "kind", StageErrorKind(err), "error", err, "suppressed", suppressed)
		}
	}
	if len(out) == 0 {
		return
	}
	// Events a tick produces enter the pipeline at the stage.
	st.m.Received.Add(uint64(len(out)))
	st.m.Sent.Add(uint64(len(out)))
	st.tapOut.offer(out)
	owned := false // Tick's array: the stage's, perhaps
	for _, later := range p.stages[i+1:] {
		out, owned = p.runStage(ctx, later, out, owned, lim)
	}
	p.fanOut(ctx, out, owned)
}
