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
	pending := jso.MaxPending
	if pending <= 0 {
		pending = DefaultMaxPending
	}
	// No library-side ack timeout (WithPublishAsyncTimeout costs a timer
	// per message): nats.go frees the slots of outstanding acks when the
	// connection changes state, and publishJetStream stops at the first
	// stall rather than stalling on every message of a frozen server.
	js, err := jetstream.New(s.nc, jetstream.WithPublishAsyncMaxPending(pending))
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

var errAckTimeout = errors.New("timed out waiting for the stream's acknowledgement")

// publishJetStream publishes msgs asynchronously (nats.go bounds the
// acknowledgements outstanding at once, MaxPending) and waits for their
// acknowledgements, retrying failures (same dedup ids) with backoff.
// retries = 0 retries until ctx ends, < 0 not at all. With a spool, it gives up as soon as
// the connection is down: the spool takes the rest. It returns the messages
// not acknowledged and the last failure. Those the server refuses for what
// they are (refusal: larger than max_payload or the stream's max_msg_size,
// a subject it cannot deliver or no stream listens on) are marked refused
// and never retried. It honours ctx everywhere: publishing stops at the
// first failure that is not a message's own (a closed connection, a full
// reconnect buffer, too many acknowledgements outstanding) rather than
// stall on every message that follows.
func (s *NATS) publishJetStream(ctx context.Context, msgs []*outMsg, retries int) ([]*outMsg, error) {
	ackTimeout := s.ackTimeout()
	backoff := 100 * time.Millisecond
	futures := make([]jetstream.PubAckFuture, len(msgs))
	bad := make([]bool, len(msgs))
	var refused []*outMsg
	for attempt := 0; len(msgs) > 0; attempt++ {
		futures, bad = futures[:len(msgs)], bad[:len(msgs)]
		clear(futures)
		clear(bad)
		var lastErr error
		stopped := false // the connection takes no more for now
		for i, m := range msgs {
			if !stopped && ctx.Err() != nil {
				stopped, lastErr = true, ctx.Err()
			}
			if stopped {
				bad[i] = true
				continue
			}
			f, err := s.js.PublishMsgAsync(&m.msg)
			if err != nil {
				bad[i], lastErr = true, err
				if m.refused = s.refusal(m, err); m.refused != "" {
					m.why = err
				} else {
					stopped = true
				}
				continue
			}
			futures[i] = f
		}
		timer := time.NewTimer(ackTimeout)
		cancelled, expired := false, false
	wait:
		for i, f := range futures {
			if f == nil {
				continue
			}
			if expired {
				// The rest get no extra wait: take what has arrived.
				select {
				case <-f.Ok():
				case err := <-f.Err():
					bad[i], lastErr = true, err
					s.classify(msgs[i], err)
				default:
					bad[i] = true
				}
				continue
			}
			select {
			case <-f.Ok():
			case err := <-f.Err():
				bad[i], lastErr = true, err
				s.classify(msgs[i], err)
			case <-timer.C:
				bad[i], lastErr, expired = true, errAckTimeout, true
			case <-ctx.Done():
				// Unconfirmed: some may still be stored, and a replay of
				// them is deduplicated.
				for j := i; j < len(bad); j++ {
					bad[j] = true
				}
				cancelled, lastErr = true, ctx.Err()
				break wait
			}
		}
		timer.Stop()
		var failed []*outMsg // in publishing order, for the spool
		for i, m := range msgs {
			switch {
			case m.refused != "":
				refused = append(refused, m) // retrying cannot help
			case bad[i]:
				failed = append(failed, m)
			}
		}
		if len(failed) == 0 {
			return refused, lastErr
		}
		if s.opts.JetStream.Stream != "" && s.nc.IsConnected() && !errors.Is(lastErr, jetstream.ErrTooManyStalledMsgs) {
			// Connected, yet unacknowledged: the stream may be gone
			// (deleted, or a server replaced with its storage). Look it up
			// (and create it) again before the next attempt.
			s.streamReady.Store(false)
		}
		if cancelled || ctx.Err() != nil || retries < 0 || (retries > 0 && attempt >= retries) || (s.spool != nil && !s.nc.IsConnected()) {
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
