package sinks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// Message headers and content types (docs/event-format.md, "On the wire").
const (
	headerFormat      = "Sluice-Format"
	headerContentType = "Content-Type"

	contentMsgpack      = "application/msgpack"
	contentJSON         = "application/json"
	contentMsgpackArray = "application/vnd.sluice.msgpack-array"
	contentJSONLines    = "application/x-ndjson"
)

// Header values are shared by every message: nats.go never modifies them.
var (
	formatValue   = []string{FormatVersion}
	contentValues = map[string][]string{
		contentMsgpack: {contentMsgpack}, contentJSON: {contentJSON},
		contentMsgpackArray: {contentMsgpackArray}, contentJSONLines: {contentJSONLines},
	}
)

// outMsg is one message on its way to the server, with the events of the
// Write batch it carries (batch[first:end]); first < 0 for a message
// replayed from the spool. msg holds its subject and payload; its headers
// are made as it is published (msgSender), from ctype and id.
type outMsg struct {
	msg        nats.Msg
	ctype      string
	id         [1]string // the dedup id, "" for core NATS
	first, end int
	// refused is the drop reason when the server refuses the message for
	// what it is (ReasonTooLarge, ReasonRejected; why says how): it is
	// never retried nor spooled.
	refused string
	why     error
	events  int // for a replayed message: the events it carries
}

// newOutMsg returns a message; id may be "".
func newOutMsg(subject, ctype, id string, data []byte) *outMsg {
	o := &outMsg{}
	o.set(subject, ctype, id, data)
	return o
}

func (o *outMsg) set(subject, ctype, id string, data []byte) {
	*o = outMsg{msg: nats.Msg{Subject: subject, Data: data}, ctype: ctype, id: [1]string{id}, first: -1, end: -1}
}

// msgSender publishes outMsgs through one reused nats.Msg and header map
// (nats.go copies both into its buffer), so that publishing allocates
// neither. Not safe for concurrent use.
type msgSender struct {
	msg nats.Msg
}

func (p *msgSender) fill(o *outMsg, reply string) {
	h := p.msg.Header
	if h == nil {
		h = nats.Header{headerFormat: formatValue}
	}
	h[headerContentType] = contentValues[o.ctype]
	if o.id[0] != "" {
		h[jetstream.MsgIDHeader] = o.id[:]
	} else {
		delete(h, jetstream.MsgIDHeader)
	}
	p.msg = nats.Msg{Subject: o.msg.Subject, Reply: reply, Data: o.msg.Data, Header: h}
}

func (p *msgSender) send(nc *nats.Conn, o *outMsg, reply string) error {
	p.fill(o, reply)
	err := nc.PublishMsg(&p.msg)
	p.msg.Data = nil // do not keep the payload alive
	return err
}

// eventsOf returns the events of batch that the messages carry.
func eventsOf(batch []pipeline.Event, msgs []*outMsg) []pipeline.Event {
	var out []pipeline.Event
	for _, m := range msgs {
		if m.first >= 0 {
			out = append(out, batch[m.first:m.end]...)
		}
	}
	return out
}

// MsgID is the deduplication id of an event: stable across retries and
// spool replays (it is stored with a spooled message), unique across hosts,
// boots and agent runs (a source numbers its events from 1 at every start,
// so the run id keeps a restarted agent's events from being taken for
// duplicates of the previous run's), and unique among the events stages
// derive from one input or make from none (pipeline.Event.Part, appended
// when not 0). A loss record, which has no sequence number of its own, is
// named by a checksum of its content, which includes its time. Safe for
// concurrent use.
func (s *NATS) MsgID(ev *pipeline.Event) string {
	return string(s.appendMsgID(nil, ev))
}

func (s *NATS) appendMsgID(dst []byte, ev *pipeline.Event) []byte {
	dst = append(dst, s.idBase...)
	if ev.Kind() == pipeline.KindLoss {
		dst = append(dst, "loss."...)
		return strconv.AppendUint(dst, uint64(crc32.Checksum(ev.Data, castagnoli)), 16)
	}
	return appendEventKey(dst, ev)
}

// appendEventKey appends "<source>.<seq>", or "<source>.<seq>.<part>" for
// an event a stage derived (pipeline.Event.Part).
func appendEventKey(dst []byte, ev *pipeline.Event) []byte {
	dst = append(dst, ev.Source...)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, ev.Seq, 10)
	if ev.Part != 0 {
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, uint64(ev.Part), 10)
	}
	return dst
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendBatchID names a batched message after its first and last events and
// their number ("<base><src>.<seq>[.<part>]-<src>.<seq>[.<part>].n<count>");
// two messages with the same first and last events and count hold the
// same events, since a stage's output keeps its order. Loss records in
// the batch are named by their checksum instead, so that a batch of loss
// records alone still has a unique id.
func (s *NATS) appendBatchID(dst []byte, evs []pipeline.Event) []byte {
	first, last := -1, -1
	for i := range evs {
		if evs[i].Kind() != pipeline.KindLoss {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		crc := uint32(0)
		for i := range evs {
			crc = crc32.Update(crc, castagnoli, evs[i].Data)
		}
		dst = append(dst, s.idBase...)
		dst = append(dst, "loss."...)
		dst = strconv.AppendUint(dst, uint64(crc), 16)
	} else {
		dst = s.appendMsgID(dst, &evs[first])
		dst = append(dst, '-')
		dst = appendEventKey(dst, &evs[last])
	}
	dst = append(dst, ".n"...)
	return strconv.AppendInt(dst, int64(len(evs)), 10)
}

// subjectFor renders ev's subject, reusing the strings of recent subjects so
// that publishing does not allocate one per event. Callers hold s.mu.
func (s *NATS) subjectFor(ev *pipeline.Event) string {
	if s.static != "" {
		return s.static
	}
	s.subjBuf = s.subject.Append(s.subjBuf[:0], ev)
	if subj, ok := s.subjects[string(s.subjBuf)]; ok {
		return subj
	}
	if len(s.subjects) >= maxCachedSubjects {
		clear(s.subjects) // a template over a high-cardinality field
	}
	subj := string(s.subjBuf)
	if len(subj) <= MaxSubjectLen {
		s.subjects[subj] = subj
	}
	return subj
}

const maxCachedSubjects = 4096

// errSubjectTooLong is why an event whose rendered subject exceeds
// MaxSubjectLen is rejected.
var errSubjectTooLong = fmt.Errorf("the rendered subject exceeds %d bytes", MaxSubjectLen)

// unsendable collects the events of one Write that cannot be sent at all:
// those that cannot be encoded, and those whose subject is too long.
type unsendable struct {
	unencodable
	longSubject []pipeline.Event
}

func (u *unsendable) loss(s *NATS) error {
	return errors.Join(u.unencodable.loss("nats", s.name), s.refusedEventsLoss(ReasonRejected, u.longSubject, errSubjectTooLong))
}

// messages builds the messages for batch: one per event, or with batching
// several consecutive events with the same subject per message. Events that
// cannot be encoded, or whose subject would be too long, are returned as a
// WriteLoss. Callers hold s.mu.
func (s *NATS) messages(batch []pipeline.Event) ([]*outMsg, error) {
	if s.opts.BatchMaxEvents > 1 {
		return s.batchedMessages(batch)
	}
	msgs := make([]*outMsg, 0, len(batch))
	arena := make([]outMsg, len(batch)) // one allocation for the batch's messages
	ctype := contentMsgpack
	if s.json {
		ctype = contentJSON
	}
	var ids []byte
	var idEnds []int
	if s.js != nil {
		for i := range batch {
			ids = s.appendMsgID(ids, &batch[i])
			idEnds = append(idEnds, len(ids))
		}
	}
	allIDs := string(ids) // one allocation for every id of the batch
	var jsonBuf []byte
	var bad unsendable
	for i := range batch {
		ev := &batch[i]
		subj := s.subjectFor(ev)
		if len(subj) > MaxSubjectLen {
			bad.longSubject = append(bad.longSubject, *ev)
			continue
		}
		data := ev.Data
		if s.json {
			start := len(jsonBuf)
			var ok bool
			if jsonBuf, ok = bad.appendJSON(jsonBuf, ev); !ok {
				continue
			}
			data = jsonBuf[start:len(jsonBuf):len(jsonBuf)]
		}
		id := ""
		if s.js != nil {
			start := 0
			if i > 0 {
				start = idEnds[i-1]
			}
			id = allIDs[start:idEnds[i]]
		}
		m := &arena[i]
		m.set(subj, ctype, id, data)
		m.first, m.end = i, i+1
		msgs = append(msgs, m)
	}
	return msgs, bad.loss(s)
}

// batchedMessages packs consecutive events with the same subject into
// messages of at most BatchMaxEvents events and BatchMaxBytes of payload (an
// event larger than that travels alone). A message's dedup id names its
// events (appendBatchID), so a retry or a replay of the same message is
// deduplicated by the stream.
func (s *NATS) batchedMessages(batch []pipeline.Event) ([]*outMsg, error) {
	limit := s.batchPayloadLimit()
	ctype := contentMsgpackArray
	if s.json {
		ctype = contentJSONLines
	}
	var msgs []*outMsg
	var bad unsendable
	var next []byte
	// The payloads of the batch's messages are cut from one buffer, reused
	// by the next Write (recycleArena): nothing holds them past the Write
	// (nats.go and the spool copy what they keep).
	arena := s.arena
	s.arena = nil
	if need := batchBytes(batch) + maxArrayHeader*len(batch); cap(arena) < need {
		arena = make([]byte, 0, need)
	}
	defer func() { s.arenaUsed = arena }()
	for i := 0; i < len(batch); {
		subj := s.subjectFor(&batch[i])
		if len(subj) > MaxSubjectLen {
			bad.longSubject = append(bad.longSubject, batch[i])
			i++
			continue
		}
		// sameMessage reports whether event j may join the message that
		// starts at i (the payload bound is checked as it is encoded).
		sameMessage := func(j int) bool {
			if j-i >= s.opts.BatchMaxEvents {
				return false
			}
			if j > i && s.static == "" {
				next = s.subject.Append(next[:0], &batch[j])
				return string(next) == subj
			}
			return true
		}
		j := i
		start := len(arena)
		if s.json {
			// JSON lines are measured as encoded: they run up to about
			// twice the msgpack size.
			for ; j < len(batch) && sameMessage(j); j++ {
				mark := len(arena)
				var ok bool
				if arena, ok = bad.appendJSON(arena, &batch[j]); ok {
					arena = append(arena, '\n')
					if j > i && len(arena)-start > limit {
						arena = arena[:mark]
						break
					}
				}
			}
		} else {
			size := 0
			for ; j < len(batch) && sameMessage(j) && (j == i || size+len(batch[j].Data) <= limit-maxArrayHeader); j++ {
				size += len(batch[j].Data)
			}
			arena = codec.AppendArrayHeader(arena, j-i)
			for k := i; k < j; k++ {
				arena = append(arena, batch[k].Data...)
			}
		}
		// A grown arena leaves the earlier payloads in the old array,
		// which they keep alive.
		data := arena[start:len(arena):len(arena)]
		id := ""
		if s.js != nil {
			id = string(s.appendBatchID(nil, batch[i:j]))
		}
		m := newOutMsg(subj, ctype, id, data)
		m.first, m.end = i, j
		msgs = append(msgs, m)
		i = j
	}
	// A batched message that lost an event still carries the others; its
	// id names the whole range, which is still unique.
	return msgs, bad.loss(s)
}

// batchBytes is the encoded size of the events of batch.
func batchBytes(batch []pipeline.Event) int {
	n := 0
	for i := range batch {
		n += len(batch[i].Data)
	}
	return n
}

// recycleArena keeps the payload buffer of the messages just published for
// the next Write, unless it grew large. Callers hold s.mu, once no message
// of the batch is in use.
func (s *NATS) recycleArena() {
	if a := s.arenaUsed; a != nil && cap(a) <= maxRecycledArena {
		s.arena = a[:0]
	}
	s.arenaUsed = nil
}

// maxRecycledArena bounds the payload buffer a sink keeps between Writes.
const maxRecycledArena = 1 << 20

// maxArrayHeader is the largest msgpack array header (array32).
const maxArrayHeader = 5

// batchHeaderRoom is what a batched message's headers (dedup id, format,
// content type) may take of the server's max_payload, which counts them.
const batchHeaderRoom = 1024

// batchPayloadLimit is the payload bound of a batched message: the
// configured one, but never more than the server (max_payload) or the
// stream (max_msg_size) accepts, so that one oversized event costs only
// itself (too_large, rejected) and not the events batched with it.
func (s *NATS) batchPayloadLimit() int {
	limit := s.opts.BatchMaxBytes
	if limit <= 0 {
		limit = DefaultBatchMaxBytes
	}
	if mp := int(s.nc.MaxPayload()); mp > 2*batchHeaderRoom {
		limit = min(limit, mp-batchHeaderRoom)
	}
	if mm := int(s.streamMaxMsg.Load()); s.js != nil && mm > 2*batchHeaderRoom {
		limit = min(limit, mm-batchHeaderRoom)
	}
	return limit
}

// DefaultBatchMaxBytes bounds a batched message's payload when
// NATSOptions.BatchMaxBytes is 0. It stays well under the server's default
// max_payload (1 MiB).
const DefaultBatchMaxBytes = 512 << 10

// Spool records: u8 record version (high nibble, 1) and content type (low
// nibble: 0 msgpack, 1 JSON, 2 msgpack array, 3 JSON lines), u32 number of
// events, u16 subject length, subject, u16
// dedup id length, id, payload.
var spoolContentTypes = [...]string{contentMsgpack, contentJSON, contentMsgpackArray, contentJSONLines}

func encodeSpooled(m *outMsg) []byte {
	id := m.id[0]
	b := make([]byte, 0, 9+len(m.msg.Subject)+len(id)+len(m.msg.Data))
	ctype := max(slices.Index(spoolContentTypes[:], m.ctype), 0)
	b = append(b, spoolRecordVersion<<4|byte(ctype))
	b = binary.LittleEndian.AppendUint32(b, uint32(max(m.end-m.first, 1)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(m.msg.Subject)))
	b = append(b, m.msg.Subject...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	return append(b, m.msg.Data...)
}

const spoolRecordVersion = 1

var errCorruptSpoolRecord = errors.New("corrupt spool record")

// decodeSpooled returns a spooled message, with the number of events it
// carries.
func decodeSpooled(b []byte) (*outMsg, error) {
	if len(b) < 9 || b[0]>>4 != spoolRecordVersion || int(b[0]&0xf) >= len(spoolContentTypes) {
		return nil, errCorruptSpoolRecord
	}
	ctype := spoolContentTypes[b[0]&0xf]
	events := int(binary.LittleEndian.Uint32(b[1:]))
	n := int(binary.LittleEndian.Uint16(b[5:]))
	b = b[7:]
	if len(b) < n+2 {
		return nil, errCorruptSpoolRecord
	}
	subj := string(b[:n])
	b = b[n:]
	n = int(binary.LittleEndian.Uint16(b))
	b = b[2:]
	if len(b) < n {
		return nil, errCorruptSpoolRecord
	}
	m := newOutMsg(subj, ctype, string(b[:n]), b[n:])
	m.events = events
	return m, nil
}
