package sinks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/pipeline"
)

// Name returns the sink's config name.
func (s *NATS) Name() string { return s.name }

// Write publishes a batch. With JetStream it returns once every message is
// acknowledged, retrying failures with backoff. With a spool, messages the
// server cannot take (disconnected, or unacknowledged after the retries, or
// still unacknowledged when ctx ends at shutdown) are written to disk and
// replayed in order after reconnecting; they count as written, since they
// are safe. Events that are lost (a full spool, an event that cannot be
// encoded, a failure without a spool) come back as pipeline.WriteLoss, so
// that exactly they are counted as dropped. Safe for concurrent use.
func (s *NATS) Write(ctx context.Context, batch []pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("nats sink %q: write after close", s.name)
	}
	if s.spool != nil && (s.spool.Len() > 0 || !s.nc.IsConnected()) {
		// Behind a non-empty spool, new events queue too, to keep order.
		msgs, encErr := s.messages(batch)
		return errors.Join(encErr, s.spoolMsgs(batch, msgs, nil))
	}
	if s.js == nil && s.opts.BatchMaxEvents <= 1 {
		return s.writeCore(batch)
	}
	msgs, encErr := s.messages(batch)
	if s.js == nil {
		var failed []*outMsg
		var lastErr error
		for i, m := range msgs {
			if err := s.nc.PublishMsg(&m.msg); err != nil {
				m.tooLarge, lastErr = errors.Is(err, nats.ErrMaxPayload), err
				if !m.tooLarge {
					failed = append(failed, msgs[i:]...)
					break
				}
				failed = append(failed, m)
			}
		}
		if len(failed) == 0 {
			return encErr
		}
		return errors.Join(encErr, s.notPublished(batch, failed, lastErr))
	}
	retries := s.opts.JetStream.Retries
	if s.spool != nil && retries == 0 {
		// Spool at the first failure rather than hold the pipeline: the
		// replayer retries in order, and the Writes after this one queue
		// behind it in the spool, so a hung server costs one ack timeout,
		// not one per batch, and a shutdown spools rather than drops.
		retries = -1
	}
	failed, err := s.publishJetStream(ctx, msgs, retries)
	if len(failed) == 0 {
		return encErr
	}
	return errors.Join(encErr, s.notPublished(batch, failed, err))
}

// notPublished spools the messages the server did not take or, without a
// spool, reports their events as lost.
func (s *NATS) notPublished(batch []pipeline.Event, msgs []*outMsg, cause error) error {
	var tooLarge []*outMsg
	n := 0
	for _, m := range msgs {
		if m.tooLarge {
			tooLarge = append(tooLarge, m)
		} else {
			msgs[n] = m
			n++
		}
	}
	msgs = msgs[:n]
	lostLarge := s.tooLargeLoss(eventsOf(batch, tooLarge))
	if len(msgs) == 0 {
		return lostLarge
	}
	if s.spool != nil {
		return errors.Join(lostLarge, s.spoolMsgs(batch, msgs, cause))
	}
	reason := pipeline.ReasonSinkError
	if errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		reason = pipeline.ReasonShutdown
	}
	return errors.Join(lostLarge, &pipeline.WriteLoss{Reason: reason, Events: eventsOf(batch, msgs),
		Err: fmt.Errorf("nats sink %q: %d messages not delivered: %w", s.name, len(msgs), cause)})
}

// writeCore publishes one core NATS message per event without building
// them first: one Msg, one header and one JSON buffer serve the batch.
func (s *NATS) writeCore(batch []pipeline.Event) error {
	m := &s.coreMsg
	m.Header = s.coreHeader
	var tooLarge []pipeline.Event
	var bad unencodable
	for i := range batch {
		ev := &batch[i]
		m.Subject = s.subjectFor(ev)
		m.Data = ev.Data
		if s.json {
			var ok bool
			if s.jsonBuf, ok = bad.appendJSON(s.jsonBuf[:0], ev); !ok {
				continue
			}
			m.Data = s.jsonBuf
		}
		if err := s.nc.PublishMsg(m); err != nil {
			if errors.Is(err, nats.ErrMaxPayload) {
				tooLarge = append(tooLarge, *ev)
				continue
			}
			rest := batch[i:]
			var lostErr error
			if s.spool != nil {
				msgs, encErr := s.messages(rest)
				lostErr = errors.Join(encErr, s.spoolMsgs(rest, msgs, err))
			} else {
				lostErr = &pipeline.WriteLoss{Reason: pipeline.ReasonSinkError, Events: rest,
					Err: fmt.Errorf("nats sink %q: %d of %d events not published: %w", s.name, len(rest), len(batch), err)}
			}
			m.Data = nil
			return errors.Join(bad.loss("nats", s.name), s.tooLargeLoss(tooLarge), lostErr)
		}
	}
	m.Data = nil // do not keep the batch alive
	return errors.Join(bad.loss("nats", s.name), s.tooLargeLoss(tooLarge))
}

func (s *NATS) tooLargeLoss(evs []pipeline.Event) error {
	if len(evs) == 0 {
		return nil
	}
	return &pipeline.WriteLoss{Reason: ReasonTooLarge, Events: evs,
		Err: fmt.Errorf("nats sink %q: %d events exceed the server's max_payload (%d bytes)", s.name, len(evs), s.nc.MaxPayload())}
}

// Close stops the replayer, flushes what the client buffered (core NATS:
// a failed flush may have lost messages, and is returned) and closes the
// connection; ctx bounds the flush. JetStream writes are
// complete when Write returns (acknowledged or spooled), so nothing of
// theirs is in flight. Spooled events stay on disk for the next start.
func (s *NATS) Close(ctx context.Context) error {
	if s.stopReplay != nil {
		s.stopReplay()
		s.replayDone.Wait()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.js == nil && s.nc.IsConnected() {
		if _, ok := ctx.Deadline(); ok {
			err = s.nc.FlushWithContext(ctx)
		} else {
			err = s.nc.FlushTimeout(5 * time.Second)
		}
	}
	s.nc.Close()
	if s.spool != nil {
		err = errors.Join(err, s.spool.Close())
	}
	if err != nil {
		return fmt.Errorf("nats sink %q: close: %w", s.name, err)
	}
	return nil
}
