package sinks

import (
	"context"
	"errors"
	"fmt"
	"time"

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
// encoded, a message the server refuses for what it is, a failure without a
// spool) come back as pipeline.WriteLoss, so that exactly they are counted
// as dropped. Safe for concurrent use.
func (s *NATS) Write(ctx context.Context, batch []pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.recycleArena()
	if s.closed {
		return fmt.Errorf("nats sink %q: write after close", s.name)
	}
	if s.spool != nil && (s.spool.Len() > 0 || !s.nc.IsConnected()) {
		// Behind a non-empty spool, new events queue too, to keep order.
		msgs, encErr := s.messages(batch)
		why := errors.New("the spool is being replayed")
		if !s.nc.IsConnected() {
			why = errors.New("not connected")
		}
		return errors.Join(encErr, s.spoolMsgs(batch, msgs, why))
	}
	if s.js == nil && s.opts.BatchMaxEvents <= 1 {
		return s.writeCore(batch)
	}
	msgs, encErr := s.messages(batch)
	if s.js == nil {
		var failed []*outMsg
		var lastErr error
		for i, m := range msgs {
			if err := s.coreSend.send(s.nc, m, ""); err != nil {
				lastErr = err
				if m.refused = s.refusal(m, err); m.refused != "" {
					m.why = err
					failed = append(failed, m)
					continue
				}
				failed = append(failed, msgs[i:]...)
				break
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

// notPublished drops the messages the server refused for what they are
// (reported as lost with their reason), and spools the others or, without
// a spool, reports their events as lost.
func (s *NATS) notPublished(batch []pipeline.Event, msgs []*outMsg, cause error) error {
	var refused = map[string][]*outMsg{}
	n := 0
	for _, m := range msgs {
		if m.refused != "" {
			refused[m.refused] = append(refused[m.refused], m)
		} else {
			msgs[n] = m
			n++
		}
	}
	msgs = msgs[:n]
	lost := errors.Join(s.refusedLoss(batch, ReasonTooLarge, refused[ReasonTooLarge]),
		s.refusedLoss(batch, ReasonRejected, refused[ReasonRejected]))
	if len(msgs) == 0 {
		return lost
	}
	if s.spool != nil {
		return errors.Join(lost, s.spoolMsgs(batch, msgs, cause))
	}
	reason := pipeline.ReasonSinkError
	if errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		reason = pipeline.ReasonShutdown
	}
	return errors.Join(lost, &pipeline.WriteLoss{Reason: reason, Events: eventsOf(batch, msgs),
		Err: fmt.Errorf("nats sink %q: %d messages not delivered: %w", s.name, len(msgs), cause)})
}

// writeCore publishes one core NATS message per event without building
// them first: one Msg, one header and one JSON buffer serve the batch.
func (s *NATS) writeCore(batch []pipeline.Event) error {
	m := &s.coreMsg
	m.Header = s.coreHeader
	refused := map[string][]pipeline.Event{}
	var why error
	var bad unsendable
	for i := range batch {
		ev := &batch[i]
		m.Subject = s.subjectFor(ev)
		if len(m.Subject) > MaxSubjectLen {
			bad.longSubject = append(bad.longSubject, *ev)
			continue
		}
		m.Data = ev.Data
		if s.json {
			var ok bool
			if s.jsonBuf, ok = bad.appendJSON(s.jsonBuf[:0], ev); !ok {
				continue
			}
			m.Data = s.jsonBuf
		}
		if err := s.nc.PublishMsg(m); err != nil {
			if reason := s.refusal(&outMsg{msg: *m}, err); reason != "" {
				refused[reason] = append(refused[reason], *ev)
				why = err
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
			return errors.Join(bad.loss(s), s.refusedEventsLoss(ReasonTooLarge, refused[ReasonTooLarge], why),
				s.refusedEventsLoss(ReasonRejected, refused[ReasonRejected], why), lostErr)
		}
	}
	m.Data = nil // do not keep the batch alive
	if len(refused) == 0 {
		return bad.loss(s)
	}
	return errors.Join(bad.loss(s), s.refusedEventsLoss(ReasonTooLarge, refused[ReasonTooLarge], why),
		s.refusedEventsLoss(ReasonRejected, refused[ReasonRejected], why))
}

// Close stops the replayer, flushes what the client buffered (core NATS:
// a failed flush may have lost messages, and is returned) and closes the
// connection. ctx bounds all of it: a server that stopped reading cannot
// hold Close past its deadline (the connection is cut). JetStream writes
// are complete when Write returns (acknowledged or spooled), so nothing of
// theirs is in flight. Spooled events stay on disk for the next start.
func (s *NATS) Close(ctx context.Context) error {
	s.closing.Store(true)
	var err error
	if s.stopReplay != nil {
		s.stopReplay()
		select {
		case <-s.replayDone:
		case <-ctx.Done():
			// The replayer honours its context; what holds it is a call
			// into the client, which closing the connection ends.
			err = fmt.Errorf("stop the spool replayer: %w", ctx.Err())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.js == nil && s.nc.IsConnected() {
		buffered, _ := s.nc.Buffered()
		var ferr error
		if _, ok := ctx.Deadline(); ok {
			ferr = s.nc.FlushWithContext(ctx)
		} else {
			ferr = s.nc.FlushTimeout(5 * time.Second)
		}
		if ferr != nil {
			err = errors.Join(err, fmt.Errorf("flush: %d bytes buffered may be lost: %w", buffered, ferr))
		}
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		s.nc.Close()
	}()
	select {
	case <-closed:
	case <-ctx.Done():
		// nats.go flushes before it closes, for as long as its flusher
		// timeout allows: cut the connection under it instead.
		s.dialer.abort()
		<-closed
	}
	if s.stopReplay != nil {
		<-s.replayDone // quick now: its client calls fail, its context is done
	}
	if s.spool != nil {
		err = errors.Join(err, s.spool.Close())
	}
	if err != nil {
		return fmt.Errorf("nats sink %q: close: %w", s.name, err)
	}
	return nil
}
