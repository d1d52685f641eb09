package pipeline

import (
	"context"
	"sync"
	"time"
)

// StageMeter counts the calls of one stage the way the pipeline's worker
// does: events in and out (a stage that adds events counts them as
// received there, one that removes them as dropped "filtered"), batches,
// the time per batch, and failed calls by kind. The worker meters its
// stages with it, and so does whatever runs stage code outside a pipeline
// (the agent runs a gadget's Wasm module in front of the edge queue).
// Safe for concurrent use.
type StageMeter struct {
	M        *ComponentMetrics
	filtered *Counter
	batches  *Counter
	ticks    *Counter
	duration *Histogram
	reg      *Registry
	name     string

	mu   sync.Mutex
	errs map[string]*Counter // by kind
}

// StageMeter returns the meter of the stage called name, registering its
// series (component "stage", error kind "error" included; see ErrorKinds). Asking twice for one name returns meters
// that count on the same series. Safe for concurrent use.
func (r *Registry) StageMeter(name string) *StageMeter {
	m := r.Component("stage", name)
	sm := &StageMeter{
		M:        m,
		filtered: m.Dropped(ReasonFiltered),
		batches:  m.Counter(MetricStageBatches, "Batches a stage was called with."),
		ticks:    m.Counter(MetricStageTicks, "Timer calls of a stage."),
		duration: m.Histogram(MetricStageDuration, "Time a stage took per batch."),
		reg:      r,
		name:     name,
		errs:     map[string]*Counter{},
	}
	r.StageErrorKinds(name)
	return sm
}

// ErrorKinds registers the stage's error counters of kinds at zero, so
// that they exist before the first failure. Safe for concurrent use.
func (sm *StageMeter) ErrorKinds(kinds ...string) {
	sm.reg.StageErrorKinds(sm.name, kinds...)
}

// Process calls st.Process(ctx, in, out) and counts the call. On error it
// counts the failure (CountError) and nothing else: what happens to the
// batch is the caller's policy, and so is its counting.
func (sm *StageMeter) Process(ctx context.Context, st Stage, in, out []Event) ([]Event, error) {
	sm.M.Received.Add(uint64(len(in)))
	sm.batches.Inc()
	start := time.Now()
	out, err := st.Process(ctx, in, out)
	sm.duration.Observe(time.Since(start))
	if err != nil {
		sm.CountError(err)
		return out, err
	}
	n, m := uint64(len(in)), uint64(len(out))
	switch {
	case m < n:
		sm.filtered.Add(n - m)
	case m > n:
		// Events a stage adds enter the pipeline there.
		sm.M.Received.Add(m - n)
	}
	sm.M.Sent.Add(m)
	return out, nil
}

// CountError counts one failed call of kind StageErrorKind(err).
func (sm *StageMeter) CountError(err error) {
	kind := StageErrorKind(err)
	sm.mu.Lock()
	c := sm.errs[kind]
	if c == nil {
		c = sm.reg.StageErrors(sm.name, kind)
		sm.errs[kind] = c
	}
	sm.mu.Unlock()
	c.Inc()
	sm.M.Errors.Inc()
}
