package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// subscribeStream reads subject from a JetStream stream with an ordered
// consumer (no state left on the server beyond its inactivity timeout):
// from the start point the flags choose, then live.
func subscribeStream(ctx context.Context, nc *nats.Conn, o *subscribeOptions, subject string, p *eventPrinter) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	name := o.stream
	if name == "" {
		if name, err = js.StreamNameBySubject(ctx, subject); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("find the stream that holds %q: no stream does (name one with --stream)", subject)
			}
			return fmt.Errorf("find the stream that holds %q: %w", subject, err)
		}
	}
	stream, err := js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("open stream %q: %w", name, err)
	}
	info := stream.CachedInfo()
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: consumerFilter(info.Config.Subjects, subject)}
	// With --last, the messages up to replayUpTo are held back until the
	// last N events among them are known.
	var replayUpTo uint64
	switch {
	case o.all:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case !o.since.t.IsZero():
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &o.since.t
	case o.last > 0:
		start, err := lastWindowStart(ctx, js, name, cfg.FilterSubjects, info.State, o.last)
		if err != nil {
			return err
		}
		if start == 0 {
			cfg.DeliverPolicy = jetstream.DeliverNewPolicy // the stream holds nothing of subject
		} else {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = start
			replayUpTo = info.State.LastSeq
		}
	default:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read stream %q: %w", name, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read stream %q: %w", name, err)
	}
	defer it.Stop()
	held := &eventRing{size: o.last}
	for !p.done() {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read stream %q: %w", name, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read stream %q: %w", name, err)
		}
		if replayUpTo > 0 {
			if meta.Sequence.Stream <= replayUpTo {
				splitEvents(msg.Subject(), msg.Headers(), msg.Data(), func(ev wireEvent) bool {
					held.push(ev)
					return true
				})
				if meta.NumPending > 0 && meta.Sequence.Stream < replayUpTo {
					continue
				}
			}
			// Caught up with what the stream held at the start.
			replayUpTo = 0
			if err := p.print(held.events()); err != nil {
				return err
			}
			held = nil
			if meta.Sequence.Stream <= info.State.LastSeq {
				continue // this message was in the replay
			}
		}
		if err := p.printMessage(msg.Subject(), msg.Headers(), msg.Data()); err != nil {
			return err
		}
	}
	return nil
}

// consumerFilter is the filter a consumer of subject needs on a stream
// with these subjects: none when subject takes in all of them (the server
// refuses a filter wider than the stream's subjects).
func consumerFilter(streamSubjects []string, subject string) []string {
	for _, s := range streamSubjects {
		if !subjectCovers(subject, s) {
			return []string{subject}
		}
	}
	return nil
}

// subjectCovers tells whether every subject that sub matches is matched by
// pattern (NATS wildcards: * one token, > one or more trailing tokens).
func subjectCovers(pattern, sub string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(sub, ".")
	for i, p := range pt {
		if p == ">" {
			return len(st) > i
		}
		if i >= len(st) {
			return false
		}
		switch {
		case p == "*":
			if st[i] == ">" {
				return false
			}
		case p != st[i]:
			return false
		}
	}
	return len(pt) == len(st)
}

// lastWindowStart finds a stream sequence from which the messages of the
// filter hold at least n events: each message holds one event or more, so
// a window of n such messages is enough. It widens the window from the
// end until it holds n of them or the whole stream, counting with a
// short-lived consumer. It returns 0 when the stream holds no message.
func lastWindowStart(ctx context.Context, js jetstream.JetStream, stream string, filter []string, state jetstream.StreamState, n int) (uint64, error) {
	if state.Msgs == 0 {
		return 0, nil
	}
	first, last := state.FirstSeq, state.LastSeq
	for width := uint64(n); ; width *= 4 {
		start := first
		if last >= width && last-width+1 > first {
			start = last - width + 1
		}
		if start == first {
			return first, nil
		}
		matching, err := countFrom(ctx, js, stream, filter, start)
		if err != nil {
			return 0, err
		}
		if matching >= uint64(n) {
			return start, nil
		}
	}
}

// countFrom counts the messages of the filter from sequence start on.
func countFrom(ctx context.Context, js jetstream.JetStream, stream string, filter []string, start uint64) (uint64, error) {
	cons, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		FilterSubjects:    filter,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute, // cleaned up by the server should the delete below fail
	})
	if err != nil {
		return 0, fmt.Errorf("count the messages of stream %q: %w", stream, err)
	}
	info := cons.CachedInfo()
	if err := js.DeleteConsumer(ctx, stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, fmt.Errorf("delete counting consumer of stream %q: %w", stream, err)
	}
	return info.NumPending, nil
}

// eventRing keeps the last size events pushed, copied out of their
// messages.
type eventRing struct {
	size int
	buf  []wireEvent
	next int
	full bool
}

func (r *eventRing) push(ev wireEvent) {
	ev.data = bytes.Clone(ev.data)
	if len(r.buf) < r.size {
		r.buf = append(r.buf, ev)
		return
	}
	r.buf[r.next] = ev
	r.next = (r.next + 1) % r.size
	r.full = true
}

// events returns the kept events, oldest first.
func (r *eventRing) events() []wireEvent {
	if !r.full {
		return r.buf
	}
	return append(append([]wireEvent(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}
