package sinks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultDuplicateWindow is the deduplication window of a stream the sink
// creates: a retry or replay of a message the stream stored within it is
// dropped by the stream.
const DefaultDuplicateWindow = 2 * time.Minute

func (s *NATS) setupJetStream(ctx context.Context) error {
	jso := s.opts.JetStream
	// The client serves stream management; publishing and its
	// acknowledgements are the sink's own (publishJetStream, jsAcks).
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("open jetstream: %w", err)
	}
	s.js = js
	if jso.Stream == "" {
		s.streamReady.Store(true)
		return nil
	}
	if s.spool != nil && !s.nc.IsConnected() {
		// Started during an outage: events spool, and the replayer
		// checks the stream once the server is reachable.
		return nil
	}
	return s.ensureStream(ctx)
}

// ensureStream checks the stream exists, creating it when configured to.
func (s *NATS) ensureStream(ctx context.Context) error {
	jso := s.opts.JetStream
	st, err := s.js.Stream(ctx, jso.Stream)
	if err == nil {
		cfg := st.CachedInfo().Config
		subjects := slices.Clone(cfg.Subjects)
		s.streamSubjects.Store(&subjects)
		s.streamMaxMsg.Store(cfg.MaxMsgSize)
		s.streamReady.Store(true)
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %q: %w", jso.Stream, err)
	}
	if !jso.Create {
		return fmt.Errorf("stream %q does not exist (set jetstream { create = true } to create it)", jso.Stream)
	}
	subjects := jso.Subjects
	if len(subjects) == 0 {
		subjects = []string{s.subject.wildcard()}
	}
	dups := jso.DuplicateWindow
	if dups <= 0 {
		dups = DefaultDuplicateWindow
	}
	_, err = s.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       jso.Stream,
		Subjects:   subjects,
		MaxAge:     jso.MaxAge,
		Duplicates: dups,
		Storage:    jetstream.FileStorage,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %q: %w", jso.Stream, err)
	}
	if err == nil {
		s.streamSubjects.Store(&subjects)
	}
	s.log.Info("created jetstream stream", "sink", s.name, "stream", jso.Stream, "subjects", subjects)
	s.streamReady.Store(true)
	return nil
}

// wildcard is the template with every field replaced by *, the subjects a
// created stream listens on.
func (t *SubjectTemplate) wildcard() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.field != "" {
			b.WriteByte('*')
		} else {
			b.WriteString(p.literal)
		}
	}
	return b.String()
}

// publishJetStream publishes msgs with a window of at most MaxPending
// acknowledgements outstanding (jsAcks) and waits for their
// acknowledgements, retrying failures (same dedup ids) with backoff.
// retries = 0 retries until ctx ends, < 0 not at all. With a spool, it gives up as soon as
// the connection is down: the spool takes the rest. It returns the messages
// not acknowledged and the last failure. Those the server refuses for what
// they are (refusal: larger than max_payload or the stream's max_msg_size,
// a subject it cannot deliver or no stream listens on) are marked refused
// and never retried. It honours ctx everywhere: publishing stops at the
// first failure that is not a message's own (a closed connection, a full
// reconnect buffer, no acknowledgement for the ack timeout while the window
// is full) rather than stall on every message that follows. One call at a
// time publishes (Write and the spool's replayer take turns).
func (s *NATS) publishJetStream(ctx context.Context, msgs []*outMsg, retries int) ([]*outMsg, error) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	acks := s.acks.Load()
	if acks == nil {
		var err error
		if acks, err = newJSAcks(s.nc); err != nil {
			return msgs, fmt.Errorf("subscribe to acknowledgements: %w", err)
		}
		s.acks.Store(acks)
	}
	ackTimeout := s.ackTimeout()
	window := s.opts.JetStream.MaxPending
	if window <= 0 {
		window = DefaultMaxPending
	}
	// A full window waits until a quarter of it is free, not for every
	// single ack: one wakeup per many acks.
	resumeAt := window - max(1, window/4)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	backoff := 100 * time.Millisecond
	var refused []*outMsg
	for attempt := 0; len(msgs) > 0; attempt++ {
		var lastErr error
		acks.begin(len(msgs))
		waitForAcks := true
	publish:
		for i, m := range msgs {
			if err := ctx.Err(); err != nil {
				lastErr, waitForAcks = err, false
				break
			}
			for !acks.sending(i, window) {
				if err := acks.await(ctx, resumeAt, ackTimeout, timer); err != nil {
					// A server that acknowledges nothing for the ack
					// timeout gets no second wait for the rest.
					lastErr, waitForAcks = err, false
					break publish
				}
			}
			if err := s.jsSend.send(s.nc, m, acks.reply(i)); err != nil {
				acks.unsent(i)
				lastErr = err
				if m.refused = s.refusal(m, err); m.refused != "" {
					m.why = err
					continue
				}
				break // the connection takes no more for now
			}
		}
		if waitForAcks {
			if err := acks.await(ctx, 0, ackTimeout, timer); err != nil {
				lastErr = err
			}
		}
		states, errs := acks.end()
		var failed []*outMsg // in publishing order, for the spool
		for i, m := range msgs {
			if m.refused == "" {
				switch states[i] {
				case ackUnsent:
					failed = append(failed, m)
					continue
				case ackPending:
					lastErr = errAckTimeout
					if ctx.Err() != nil {
						// Unconfirmed: some may still be stored, and a
						// replay of them is deduplicated.
						lastErr = ctx.Err()
					}
					failed = append(failed, m)
					continue
				case ackFailed:
					lastErr = errs[i]
					if s.classify(m, errs[i]); m.refused == "" {
						failed = append(failed, m)
						continue
					}
				case ackOK:
					continue
				}
			}
			refused = append(refused, m) // retrying cannot help
		}
		if len(failed) == 0 {
			return refused, lastErr
		}
		if s.opts.JetStream.Stream != "" && s.nc.IsConnected() {
			// Connected, yet unacknowledged: the stream may be gone
			// (deleted, or a server replaced with its storage). Look it up
			// (and create it) again before the next attempt.
			s.streamReady.Store(false)
		}
		if ctx.Err() != nil || retries < 0 || (retries > 0 && attempt >= retries) || (s.spool != nil && !s.nc.IsConnected()) {
			return append(refused, failed...), lastErr
		}
		s.log.Warn("jetstream publish failed; retrying", "sink", s.name, "messages", len(failed), "attempt", attempt+1, "error", lastErr)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return append(refused, failed...), ctx.Err()
		}
		backoff = min(backoff*2, 5*time.Second)
		if !s.streamReady.Load() && s.nc.IsConnected() {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := s.ensureStream(sctx); err != nil {
				s.log.Warn("jetstream stream not ready", "sink", s.name, "error", err)
			}
			cancel()
		}
		msgs = failed
	}
	return refused, nil
}

// classify marks m refused when err, the stream's answer to it, refuses it
// for what it is.
func (s *NATS) classify(m *outMsg, err error) {
	if m.refused = s.refusal(m, err); m.refused != "" {
		m.why = err
	}
}

func (s *NATS) ackTimeout() time.Duration {
	if t := s.opts.JetStream.AckTimeout; t > 0 {
		return t
	}
	return 5 * time.Second
}
