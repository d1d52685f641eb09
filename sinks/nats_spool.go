package sinks

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/pipeline"
)

// spooledEvents is the spool's Count function: the event count of a record.
func spooledEvents(rec []byte) int {
	if len(rec) < 5 {
		return 1
	}
	return max(int(binary.LittleEndian.Uint32(rec[1:])), 1)
}

// spoolMsgs writes messages to the spool. The events of the messages it
// cannot store come back as a WriteLoss (reason spool_full, or
// sink_error for an I/O error).
func (s *NATS) spoolMsgs(batch []pipeline.Event, msgs []*outMsg, cause error) error {
	if len(msgs) == 0 {
		return nil
	}
	recs := make([][]byte, len(msgs))
	for i, m := range msgs {
		recs[i] = encodeSpooled(m)
	}
	stored, droppedOld, err := s.spool.Append(recs)
	s.spoolBytes.Set(s.spool.Len())
	spooledEvents := 0
	for _, m := range msgs[:stored] {
		spooledEvents += m.end - m.first
	}
	s.spooled.Add(uint64(spooledEvents))
	if droppedOld > 0 {
		s.spoolDropOld.Add(uint64(droppedOld))
		s.log.Warn("spool full: deleted its oldest events", "sink", s.name, "events", droppedOld)
	}
	if stored == len(msgs) {
		return nil
	}
	reason := ReasonSpoolFull
	if !errors.Is(err, ErrSpoolFull) {
		reason = pipeline.ReasonSinkError
	}
	why := err
	if cause != nil {
		why = fmt.Errorf("%w (spooling after: %v)", err, cause)
	}
	return &pipeline.WriteLoss{Reason: reason, Events: eventsOf(batch, msgs[stored:]),
		Err: fmt.Errorf("nats sink %q: %d messages not spooled: %w", s.name, len(msgs)-stored, why)}
}

// replay runs until ctx ends, sending spooled messages in order whenever
// the connection is up. It owns nothing but its loop; Close stops it.
func (s *NATS) replay(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.reconnected:
		}
		for ctx.Err() == nil && s.nc.IsConnected() && s.spool.Len() > 0 {
			if !s.replayOldest(ctx) {
				break
			}
		}
	}
}

// replayOldest sends the oldest spool segment; it reports whether the
// segment was delivered (and deleted). It runs beside Write: a Write that
// finds the spool non-empty appends to it, behind the segment replayed.
func (s *NATS) replayOldest(ctx context.Context) bool {
	if s.js != nil && !s.streamReady.Load() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.ensureStream(sctx)
		cancel()
		if err != nil {
			s.log.Warn("jetstream stream not ready; spool kept", "sink", s.name, "error", err)
			return false
		}
	}
	seg, ok, err := s.spool.Oldest()
	if err != nil {
		s.log.Error("read spool", "sink", s.name, "error", err)
		return false
	}
	if !ok {
		return false
	}
	id := seg.ID
	if d := seg.Damage; d.Regions > 0 {
		s.spoolCorrupt.Add(uint64(d.Events))
		s.spoolCorruptBytes.Add(uint64(d.Bytes))
		s.log.Error("skipped damaged spool records", "sink", s.name, "segment", id, "regions", d.Regions, "bytes", d.Bytes, "events", d.Events)
	}
	msgs := make([]*outMsg, 0, len(seg.Records))
	events := 0
	for _, r := range seg.Records {
		m, err := decodeSpooled(r)
		if err != nil {
			s.log.Error("skip corrupt spool record", "sink", s.name, "error", err)
			s.spoolCorrupt.Add(uint64(spooledEvents(r)))
			continue
		}
		msgs = append(msgs, m)
		events += m.events
	}
	var rejected []*outMsg // larger than the server takes: never deliverable
	if s.js != nil {
		failed, err := s.publishJetStream(ctx, msgs, 2)
		retry := false
		for _, m := range failed {
			if m.tooLarge {
				rejected = append(rejected, m)
			} else {
				retry = true
			}
		}
		if retry {
			s.spool.Release(id)
			if ctx.Err() == nil {
				s.log.Warn("spool replay incomplete; will retry", "sink", s.name, "messages", len(failed), "error", err)
			}
			return false
		}
	} else {
		for _, m := range msgs {
			if err := s.nc.PublishMsg(&m.msg); errors.Is(err, nats.ErrMaxPayload) {
				rejected = append(rejected, m)
			} else if err != nil {
				s.spool.Release(id)
				return false
			}
		}
		if err := s.nc.FlushTimeout(5 * time.Second); err != nil {
			s.spool.Release(id)
			return false
		}
	}
	if err := s.spool.Consumed(id); err != nil {
		s.log.Error("delete replayed spool segment", "sink", s.name, "error", err)
		return false
	}
	s.spoolBytes.Set(s.spool.Len())
	lost := 0
	for _, m := range rejected {
		lost += m.events
	}
	if lost > 0 {
		s.spoolTooLarge.Add(uint64(lost))
		s.log.Error("spooled messages exceed the server's max_payload; dropped", "sink", s.name, "events", lost, "max_payload", s.nc.MaxPayload())
	}
	s.replayed.Add(uint64(events - lost))
	return true
}
