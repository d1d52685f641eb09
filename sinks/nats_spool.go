package sinks

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

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
	size := s.spool.Len()
	s.spoolBytes.Set(size)
	s.noticer.sized(size, cause)
	spooledEvents := 0
	for _, m := range msgs[:stored] {
		spooledEvents += m.end - m.first
	}
	s.spooled.Add(uint64(spooledEvents))
	if droppedOld > 0 {
		s.spoolLoss("drop_oldest", []spoolLost{{events: int(droppedOld)}}, errors.New("the spool was full: deleted its oldest segment to make room"))
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
// What cannot be delivered ever (damaged records, messages the server
// refuses for what they are) is dropped, counted, logged and reported by a
// loss record queued behind it, so that it never holds up what follows,
// in this run or the next.
func (s *NATS) replayOldest(ctx context.Context) bool {
	if s.js != nil && !s.streamReady.Load() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.ensureStream(sctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("jetstream stream not ready; spool kept", "sink", s.name, "error", err)
			}
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
	msgs := make([]*outMsg, 0, len(seg.Records))
	events := 0
	var rejected []*outMsg // refused before sending: a subject no server takes
	for _, r := range seg.Records {
		m, err := decodeSpooled(r)
		if err != nil {
			seg.Damage.Regions++
			seg.Damage.Events += spooledEvents(r)
			continue
		}
		if err := CheckSubject(m.msg.Subject); err != nil {
			m.refused, m.why = ReasonRejected, err
			rejected = append(rejected, m)
			continue
		}
		msgs = append(msgs, m)
		events += m.events
	}
	var refused []*outMsg
	if s.js != nil {
		failed, err := s.publishJetStream(ctx, msgs, 2)
		retry := false
		for _, m := range failed {
			if m.refused != "" {
				refused = append(refused, m)
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
		var send msgSender
		for _, m := range msgs {
			if err := send.send(s.nc, m, ""); err != nil {
				if m.refused = s.refusal(m, err); m.refused != "" {
					m.why = err
					refused = append(refused, m)
					continue
				}
				s.spool.Release(id)
				return false
			}
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.nc.FlushWithContext(fctx)
		cancel()
		if err != nil {
			s.spool.Release(id)
			return false
		}
	}
	// The losses are counted and their loss records spooled (into a fresh
	// segment: Oldest closed this one) before the segment is deleted, so
	// that the spool is never seen empty with its losses unreported, and a
	// crash in between reports them twice rather than never.
	s.mu.Lock() // spoolLoss renders subjects, which Write does too
	if d := seg.Damage; d.Regions > 0 {
		s.spoolCorruptBytes.Add(uint64(d.Bytes))
		s.spoolLoss("corrupt", []spoolLost{{events: d.Events}}, fmt.Errorf("segment %d: %s", id, d))
	}
	for _, reason := range []string{ReasonRejected, ReasonTooLarge} {
		var ls []spoolLost
		var why error
		for _, m := range append(refused, rejected...) {
			if m.refused == reason {
				ls, why = append(ls, lostOf(m)), m.why
			}
		}
		s.spoolLoss(reason, ls, why)
	}
	s.mu.Unlock()
	lost := 0
	for _, m := range refused {
		lost += m.events
	}
	s.replayed.Add(uint64(events - lost))
	if err := s.spool.Consumed(id); err != nil {
		s.log.Error("delete replayed spool segment", "sink", s.name, "error", err)
		return false
	}
	s.spoolBytes.Set(s.spool.Len())
	s.noticer.sized(s.spool.Len(), nil)
	return true
}
