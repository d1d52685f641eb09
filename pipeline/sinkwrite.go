package pipeline

import (
	"errors"
	"fmt"
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
// events were lost.
func (p *Pipeline) countWriteError(s *sinkRT, buf []Event, err error, shutdown bool) int {
	s.m.Errors.Inc()
	losses := writeLosses(err, nil)
	if len(losses) == 0 {
		reason, ctr := ReasonSinkError, s.sinkErr
		if shutdown {
			reason, ctr = ReasonShutdown, s.shutdown
		}
		ctr.Add(uint64(len(buf)))
		trackLoss(p.loss, s.q.name, reason, buf)
		return len(buf)
	}
	lost := 0
	for _, l := range losses {
		n := min(len(l.Events), len(buf)-lost) // a sink cannot lose more than it was given
		s.m.Dropped(l.Reason).Add(uint64(n))
		trackLoss(p.loss, s.q.name, l.Reason, l.Events[:n])
		lost += n
	}
	s.m.Sent.Add(uint64(len(buf) - lost))
	return lost
}
