package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// WriteLoss is the error a Sink.Write returns when it delivered part of its
// batch and gave up on the rest (a full spool, a full disk, an event that
// could not be encoded). The pipeline then counts exactly Events as dropped
// under Reason, puts them in the loss records, and counts the rest of the
// batch as sent. A Write whose error tree holds no WriteLoss has lost its
// whole batch (reason sink_error). Several WriteLoss values may be joined
// (errors.Join) when a batch lost events for several reasons; other errors
// joined beside them are only logged.
type WriteLoss struct {
	Reason string  // a drop reason such as "spool_full" or "disk_full"
	Events []Event // the lost events: elements of the batch given to Write
	Err    error   // why
}

func (e *WriteLoss) Error() string {
	return fmt.Sprintf("%d events dropped (%s): %v", len(e.Events), e.Reason, e.Err)
}

func (e *WriteLoss) Unwrap() error { return e.Err }

// writeLosses collects every WriteLoss in err's tree (errors.As finds only
// the first).
func writeLosses(err error, out []*WriteLoss) []*WriteLoss {
	switch e := err.(type) {
	case nil:
		return out
	case *WriteLoss:
		return append(out, e)
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			out = writeLosses(inner, out)
		}
		return out
	}
	return writeLosses(errors.Unwrap(err), out)
}

// BatchingSink is implemented by sinks that want batches of their own size
// rather than the pipeline's: the writer of such a sink pops up to maxEvents
// events for one Write, waiting at most maxDelay after the first one for the
// batch to fill (the pipeline's values apply where they are <= 0). Events
// waiting for a batch stay in the sink's bounded queue, counted there and
// subject to its policy. Called before every batch the writer pops, so
// it must be cheap.
type BatchingSink interface {
	Sink
	WriteBatch() (maxEvents int, maxDelay time.Duration)
}

// sinkBatch returns the batch size and delay the writer of s uses.
func (p *Pipeline) sinkBatch(s Sink) (int, time.Duration) {
	bc := p.batch.Load()
	size, delay := bc.size, bc.delay
	if b, ok := s.(BatchingSink); ok {
		n, d := b.WriteBatch()
		if n > 0 {
			size = n
		}
		if d > 0 {
			delay = d
		}
	}
	return size, delay
}

// countWriteError counts a failed Write of buf and returns how many of its
// events were lost. The loss records among them are not lost yet: they go
// to s.kept, to be written again ahead of the next batch (a loss record
// must outlive the failure it may report), unless shutdown says there is
// no next batch.
func (p *Pipeline) countWriteError(s *sinkRT, buf []Event, err error, shutdown bool) int {
	s.m.Errors.Inc()
	losses := writeLosses(err, nil)
	if len(losses) == 0 {
		reason, ctr := ReasonSinkError, s.sinkErr
		if shutdown {
			reason, ctr = ReasonShutdown, s.shutdown
		}
		lost := p.keepLossRecords(s, buf, reason, shutdown)
		ctr.Add(uint64(len(lost)))
		trackLoss(p.loss, s.q.name, reason, lost)
		return len(lost)
	}
	lost, kept := 0, 0
	for _, l := range losses {
		evs := l.Events[:min(len(l.Events), len(buf)-lost-kept)] // a sink cannot lose more than it was given
		gone := p.keepLossRecords(s, evs, l.Reason, shutdown)
		s.m.Dropped(l.Reason).Add(uint64(len(gone)))
		trackLoss(p.loss, s.q.name, l.Reason, gone)
		lost += len(gone)
		kept += len(evs) - len(gone)
	}
	s.m.Sent.Add(uint64(len(buf) - lost - kept))
	return lost
}

// maxKeptLossRecords bounds the loss records a failing sink keeps for its
// next write. Loss records are aggregates (one per source, component and
// reason every LossInterval), so this holds hours of them.
const maxKeptLossRecords = 1024

// keepLossRecords moves the loss records of evs, which a write lost, to
// s.kept for the next write, and returns the rest of evs (in a new slice
// when any was kept). Past maxKeptLossRecords the oldest kept records are
// dropped for reason, counted, and so are all of them at shutdown.
func (p *Pipeline) keepLossRecords(s *sinkRT, evs []Event, reason string, shutdown bool) []Event {
	if !slices.ContainsFunc(evs, func(ev Event) bool { return ev.Kind() == KindLoss }) {
		return evs
	}
	rest := make([]Event, 0, len(evs))
	for _, ev := range evs {
		if ev.Kind() == KindLoss && !shutdown {
			s.kept = append(s.kept, ev)
			s.keptReason = reason
		} else {
			rest = append(rest, ev)
		}
	}
	if over := len(s.kept) - maxKeptLossRecords; over > 0 {
		rest = append(rest, s.kept[:over]...)
		s.kept = slices.Delete(s.kept, 0, over)
	}
	s.lossRecordsLost.Add(uint64(countLossRecords(rest)))
	return rest
}

func countLossRecords(evs []Event) int {
	n := 0
	for i := range evs {
		if evs[i].Kind() == KindLoss {
			n++
		}
	}
	return n
}

// withKept returns buf with the loss records kept from failed writes in
// front, and clears them from s (they are in flight again).
func (s *sinkRT) withKept(buf []Event) []Event {
	if len(s.kept) == 0 {
		return buf
	}
	out := append(slices.Clone(s.kept), buf...)
	clear(s.kept)
	s.kept = s.kept[:0]
	return out
}

// dropKept counts the loss records still kept when the writer ends: for
// the reason their last write failed, or shutdown.
func (p *Pipeline) dropKept(s *sinkRT, shutdown bool) {
	if len(s.kept) == 0 {
		return
	}
	reason := s.keptReason
	if shutdown || reason == "" {
		reason = ReasonShutdown
	}
	s.m.Dropped(reason).Add(uint64(len(s.kept)))
	s.lossRecordsLost.Add(uint64(len(s.kept)))
	p.log.Warn("loss records not written: the sink kept failing", "sink", s.sink.Name(), "records", len(s.kept))
	s.kept = nil
}
