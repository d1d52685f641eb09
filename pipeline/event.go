package pipeline

import (
	"context"
	"slices"
	"sync/atomic"
)

// Kind tells ordinary events from records the pipeline itself produces.
type Kind uint8

const (
	// KindEvent is an event decoded from a gadget (or produced by a stage).
	KindEvent Kind = iota
	// KindLoss is an in-stream loss record: it tells consumers that events
	// were dropped upstream (source, reason, count, sequence range).
	KindLoss
)

func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindLoss:
		return "loss"
	}
	return "unknown"
}

// Event is one record moving through a pipeline.
//
// Data is the complete event encoded once, as a msgpack map whose first keys
// are the envelope (time, host, source, gadget, seq) followed by the gadget's
// fields (see docs/event-format.md). Sinks pass Data through or transcode it;
// nothing downstream of the decoder re-encodes an event it does not change.
//
// An Event is a small value: copying it copies the slice header, not the
// bytes. Data must be treated as immutable once the event is emitted.
//
// (Source, Seq, Part) identifies an event within an agent run: sinks that
// deduplicate (JetStream's Nats-Msg-Id) name events by it. A source's events
// have Part 0. A stage that derives several events from one input (a
// flat-map, a repeated KEEP) gives each its own Part (DerivedPart), and an
// event a stage makes from no input has Seq 0 and a Part no other such event
// of the process has (UnsequencedPart).
type Event struct {
	Data   []byte
	Schema *Schema // field layout of Data; nil when unknown (e.g. made by a stage)
	Source string  // the config name of the source that produced the event
	Seq    uint64  // per-source sequence number, gap-free unless a drop was counted
	Part   uint64  // tells apart events derived from one input; 0 for a source's events
	Kind   Kind
}

// DerivedPart returns the Part of the index-th (from 0) of several events a
// stage derived from one input whose Part is parent. An input that yields
// exactly one event passes its Part on unchanged, so stages that filter or
// modify leave identities alone; this function is for inputs that yield
// more than one.
//
// The first stage that multiplies an event numbers its copies exactly,
// 1, 2, 3...; further multiplication of those (nested flat-maps) mixes the
// parent and the index into a 63-bit hash with the top bit set, which keeps
// every Part that can arise from one input distinct unless two 63-bit
// hashes collide. The result depends only on (parent, index), so the same
// input through the same stages gets the same Parts: a replay is
// deduplicated, a distinct event never is.
func DerivedPart(parent uint64, index int) uint64 {
	if parent == 0 {
		return uint64(index) + 1
	}
	// murmur3's 64-bit finaliser over (parent, index): a bijection of its
	// input, so the indexes of one parent never collide with each other.
	x := parent*0x9E3779B97F4A7C15 ^ (uint64(index) + 1)
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x | 1<<63
}

// unsequenced numbers the events stages make from no input, process-wide,
// so that two stages (or two versions of one, or a stage made again by a
// reload) never give two of them the same identity.
var unsequenced atomic.Uint64

// UnsequencedPart returns a Part for an event made from no input (a tick's
// summary, say; its Seq is 0) that no other call in this process returns.
// Across agent runs the sinks' run id keeps them apart. Safe for concurrent
// use.
func UnsequencedPart() uint64 { return unsequenced.Add(1) }

// Size is the number of bytes the event accounts for in queue limits.
func (e *Event) Size() int { return len(e.Data) + eventOverhead }

// eventOverhead approximates the memory an Event costs beyond its Data, so
// that byte limits stay meaningful for tiny events.
const eventOverhead = 64

// FieldKind is the rendered type of a field, as a sink sees it.
type FieldKind uint8

const (
	FieldInt FieldKind = iota
	FieldUint
	FieldBool
	FieldFloat
	FieldString
	FieldList // a list of strings or scalars
	FieldBytes
)

// Field describes one key of an encoded event, in encoding order.
type Field struct {
	Name  string
	Kind  FieldKind
	Width int // suggested column width for table output
	Doc   string
}

// Schema describes the keys of the events of one stream, envelope included.
// It is built once per event type and shared by all its events.
type Schema struct {
	Gadget string
	Type   string // the BTF struct name of the event type
	Fields []Field
}

// HasField reports whether the stream's events have a key called name.
func (s *Schema) HasField(name string) bool {
	return slices.ContainsFunc(s.Fields, func(f Field) bool { return f.Name == name })
}

// Emitter accepts batches of events from a producer. The emitter owns the
// slice after Emit returns only if it says so; callers must not reuse the
// events' Data after emitting them.
type Emitter interface {
	// Emit hands a batch downstream. It may block (when_full = "block") until
	// ctx is done; under drop policies it never blocks.
	Emit(ctx context.Context, batch []Event) error
}

// Source produces events until its context is cancelled.
type Source interface {
	Name() string
	// Run reads events and emits them until ctx is cancelled; it returns nil
	// on cancellation and releases its kernel resources before returning.
	Run(ctx context.Context, out Emitter) error
}

// Sink writes batches of events to a destination.
type Sink interface {
	Name() string
	// Write delivers one batch. A returned error is counted; the batch is not
	// retried by the pipeline (sinks with delivery guarantees retry inside).
	Write(ctx context.Context, batch []Event) error
	// Close flushes what is buffered and releases resources; ctx bounds the
	// flush (the shutdown grace period).
	Close(ctx context.Context) error
}

// HealthReporter is implemented by components that can run yet not do
// their job as they should: a sink whose server is unreachable (spooling,
// or losing events), a sink replaying a backlog. The agent's health
// endpoint reports them as degraded. Health returns nil when all is well,
// else an error that says what is wrong, for people. Safe for concurrent
// use.
type HealthReporter interface {
	Health() error
}

// LossReporter is implemented by the Emitter a pipeline hands to each source.
// Sources find it by type assertion and report events lost before they were
// numbered (ring buffer reserve failures, lost perf samples), so that the
// loss is counted and appears in the stream as a loss record. Safe for
// concurrent use.
type LossReporter interface {
	ReportLoss(source, gadget, reason string, count uint64)
}
