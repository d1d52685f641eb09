package sinks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// ReasonRejected is the drop reason of events in a message the server
// refuses for what it is, not for an outage: a subject it cannot deliver,
// a message larger than the stream's max_msg_size. Retrying such a message
// cannot succeed, and holding it would hold everything queued behind it.
// (A message larger than the server's max_payload is ReasonTooLarge.)
const ReasonRejected = "rejected"

// refusal classifies a failed publish: ReasonTooLarge or ReasonRejected
// when the message itself is refused, "" for a failure that may pass (an
// outage, a timeout, a stream being re-created).
func (s *NATS) refusal(m *outMsg, err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, nats.ErrMaxPayload):
		return ReasonTooLarge
	case errors.Is(err, nats.ErrBadSubject):
		return ReasonRejected
	}
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamMessageExceedsMaximum, jsErrCodeStreamHeaderExceedsMaximum:
			return ReasonRejected
		}
	}
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		// No stream listens on the subject. While the stream is there
		// and listens on other subjects, this message's subject is
		// outside it: it will never be stored.
		if subjects := s.streamSubjects.Load(); subjects != nil && len(*subjects) > 0 && !subjectMatchesAny(m.msg.Subject, *subjects) {
			return ReasonRejected
		}
	}
	return ""
}

// jsErrCodeStreamHeaderExceedsMaximum is the server's "header size exceeds
// maximum allowed", which nats.go names no constant for.
const jsErrCodeStreamHeaderExceedsMaximum jetstream.ErrorCode = 10097

// subjectMatchesAny reports whether subj matches one of the subject
// filters (with * and > wildcards) a stream listens on.
func subjectMatchesAny(subj string, filters []string) bool {
	for _, f := range filters {
		if subjectMatches(subj, f) {
			return true
		}
	}
	return false
}

func subjectMatches(subj, filter string) bool {
	for {
		ft, frest, fmore := strings.Cut(filter, ".")
		st, srest, smore := strings.Cut(subj, ".")
		switch {
		case ft == ">":
			return true
		case ft != "*" && ft != st:
			return false
		case fmore != smore:
			return false
		case !fmore:
			return true
		}
		filter, subj = frest, srest
	}
}

// refusedLoss reports the events of batch that msgs (refused for reason)
// carry as lost.
func (s *NATS) refusedLoss(batch []pipeline.Event, reason string, msgs []*outMsg) error {
	evs := eventsOf(batch, msgs)
	if len(evs) == 0 {
		return nil
	}
	return s.refusedEventsLoss(reason, evs, msgs[0].why)
}

func (s *NATS) refusedEventsLoss(reason string, evs []pipeline.Event, why error) error {
	if len(evs) == 0 {
		return nil
	}
	if reason == ReasonTooLarge {
		why = fmt.Errorf("exceed the server's max_payload (%d bytes)", s.nc.MaxPayload())
	}
	return &pipeline.WriteLoss{Reason: reason, Events: evs,
		Err: fmt.Errorf("nats sink %q: %d events refused by the server: %w", s.name, len(evs), why)}
}

// spoolLoss accounts for spooled events lost after the spool accepted them
// (counted as sent then): it counts them by reason, logs, and queues a loss
// record behind them in the spool, so that consumers of the stream learn
// of the gap even though the pipeline's loss records could not report it.
// lost describes them, one entry per message or damaged stretch. Callers
// hold s.mu.
func (s *NATS) spoolLoss(reason string, lost []spoolLost, why error) {
	events := 0
	for _, l := range lost {
		events += l.events
	}
	if events == 0 {
		return
	}
	switch reason {
	case ReasonTooLarge:
		s.spoolTooLarge.Add(uint64(events))
	case ReasonRejected:
		s.spoolRejected.Add(uint64(events))
	case "corrupt":
		s.spoolCorrupt.Add(uint64(events))
	case "drop_oldest":
		s.spoolDropOld.Add(uint64(events))
	}
	s.log.Error("spooled events lost", "sink", s.name, "reason", reason, "events", events, "error", why)
	t := pipeline.NewLossTracker()
	for _, l := range lost {
		t.Add(l.source, l.gadget, "sink."+s.name+".spool", reason, uint64(l.events), l.seqFirst, l.seqLast)
	}
	recs := t.Flush(time.Now(), s.opts.Host)
	msgs, err := s.messages(recs)
	if err == nil {
		var spoolErr error
		if s.spool != nil {
			rs := make([][]byte, len(msgs))
			for i, m := range msgs {
				rs[i] = encodeSpooled(m)
			}
			var n int
			var dropped int64
			n, dropped, spoolErr = s.spool.Append(rs)
			s.spoolBytes.Set(s.spool.Len())
			if dropped > 0 {
				// Making room for the record cost older events: counted
				// and logged, with no loss record of their own (that
				// could go on).
				s.spoolDropOld.Add(uint64(dropped))
				s.log.Error("spooled events lost", "sink", s.name, "reason", "drop_oldest", "events", dropped)
			}
			if n == len(rs) {
				return
			}
		}
		err = spoolErr
	}
	s.lossRecordsLost.Add(uint64(len(recs)))
	s.log.Error("cannot queue a loss record for lost spooled events", "sink", s.name, "reason", reason, "events", events, "error", err)
}

// spoolLost describes the events of one spooled message that were lost.
type spoolLost struct {
	source, gadget    string
	events            int
	seqFirst, seqLast uint64
}

// lostOf describes the events a spooled message carries, from its payload
// (the envelope keys of its events), for a loss record.
func lostOf(m *outMsg) spoolLost {
	l := spoolLost{events: max(m.events, 1)}
	add := func(source, gadget string, seq uint64) {
		if l.source == "" {
			l.source, l.gadget = source, gadget
		}
		if seq != 0 && (l.seqFirst == 0 || seq < l.seqFirst) {
			l.seqFirst = seq
		}
		l.seqLast = max(l.seqLast, seq)
	}
	data := m.msg.Data
	switch m.ctype {
	case contentMsgpack:
		add(envelopeOf(data))
	case contentMsgpackArray:
		n, rest, err := codec.ReadArrayHeader(data)
		for i := 0; err == nil && i < n; i++ {
			var size int
			if size, err = codec.Skip(rest); err == nil {
				add(envelopeOf(rest[:size]))
				rest = rest[size:]
			}
		}
	case contentJSON, contentJSONLines:
		for line := range strings.SplitSeq(string(data), "\n") {
			var env struct {
				Source string `json:"source"`
				Gadget string `json:"gadget"`
				Seq    uint64 `json:"seq"`
			}
			if json.Unmarshal([]byte(line), &env) == nil {
				add(env.Source, env.Gadget, env.Seq)
			}
		}
	}
	return l
}

// envelopeOf reads an encoded event's source, gadget and seq.
func envelopeOf(ev []byte) (source, gadget string, seq uint64) {
	if v, ok := codec.Lookup(ev, "source"); ok {
		if b, _, err := codec.ReadString(v); err == nil {
			source = string(b)
		}
	}
	if v, ok := codec.Lookup(ev, "gadget"); ok {
		if b, _, err := codec.ReadString(v); err == nil {
			gadget = string(b)
		}
	}
	if v, ok := codec.Lookup(ev, "seq"); ok {
		seq, _, _ = codec.ReadUint(v)
	}
	return source, gadget, seq
}
