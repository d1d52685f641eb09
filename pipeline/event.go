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
// bytes. Data must be treated as immutable once the event is emitted. It
// takes 64 bytes (a test holds it there): queues and stages copy events by
// value, and a larger one costs every event on every hop.
//
// (Source, Seq, Part) identifies an event within an agent run: sinks that
// deduplicate (JetStream's Nats-Msg-Id) name events by it. A source's events
// have Part 0. When a stage yields several events of one (Source, Seq) (a
// flat-map, a repeated KEEP), they are numbered apart: 1, 2, 3... in output
// order where the stage saw every event of that source event (the common
// case: pipeline stages see a source event's events in one batch), else
// with UnsequencedPart values for the extra copies. An event a stage makes
// from no input has Seq 0 and an UnsequencedPart. The Wasm host does the
// numbering (wasmstages); a stage of another kind that multiplies events
// must do the same.
type Event struct {
	Data []byte
	// Schema is the field layout of Data; nil when unknown (e.g. made by a
	// stage). LossSchema marks a loss record (see Kind).
	Schema *Schema
	Source string // the config name of the source that produced the event
	Seq    uint64 // per-source sequence number, gap-free unless a drop was counted
	Part   uint32 // tells apart the events of one (Source, Seq); 0 for a source's event
	// MntNS is the mount namespace of the process the event is about, as
	// the source knows it (a gadget's gadget_mntns_id field), for stages
	// that resolve workloads without decoding Data; 0 when unknown. The
	// kernel numbers namespaces with 32-bit inode numbers (ns_common.inum).
	MntNS uint32
}

// Kind tells a loss record (its Schema is LossSchema) from an event. It is
// not a field of its own so that an Event stays at 64 bytes.
func (e *Event) Kind() Kind {
	if e.Schema == LossSchema {
		return KindLoss
	}
	return KindEvent
}

// unsequenced counts the Parts UnsequencedPart has handed out.
var unsequenced atomic.Uint64

// UnsequencedPart returns a Part no other call returns for a long time, in
// [2^31, 2^32), apart from the 1, 2, 3... that number a source event's
// events: for an event made from no input (a tick's summary, say; its Seq
// is 0), and for a copy made where its siblings may be elsewhere. It
// repeats only after 2^31 calls in this process, long after a JetStream
// duplicate window has forgotten the first use; across agent runs the
// sinks' run id keeps them apart. Safe for concurrent use.
func UnsequencedPart() uint32 { return 1<<31 | uint32((unsequenced.Add(1)-1)%(1<<31)) }

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
	// Hidden leaves the field out of table columns (a raw number beside its
	// readable rendering, or a gadget's columns.hidden annotation); JSON
	// keeps every field.
	Hidden bool
	// Histogram marks a list of histogram slot counts and how slots map to
	// values: "log2" (slot i counts values in [2^i, 2^(i+1)) ) or "linear"
	// (slot i counts the value i); "" for other fields.
	Histogram string
	// Unit of the field's values (a histogram's buckets), from the gadget's
	// metadata; "" when unknown.
	Unit string
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

// Emitter accepts batches of events from a producer. An emitter copies the
// events it keeps and does not hold on to the batch slice after Emit
// returns: the producer reuses it for its next batch (a reader would
// otherwise allocate a slice per batch). The events' Data is another
// matter: it belongs to the pipeline once emitted, and the producer must
// not reuse it.
type Emitter interface {
	// Emit hands a batch downstream. It may block (when_full = "block") until
	// ctx is done; under drop policies it never blocks.
	Emit(ctx context.Context, batch []Event) error
}

// BatchEmitter is implemented by emitters that can take a batch over
// instead of copying it: the pipeline's source emitter. A producer that
// fills a batch from NewBatch hands it over with EmitBatch, and must not
// touch the batch, nor the rest of its backing array, after the call; it
// takes a new one from NewBatch for its next batch. The batch then moves
// through the pipeline's queues whole, not event by event (see Queue).
type BatchEmitter interface {
	Emitter
	// EmitBatch is Emit of a batch the emitter takes over.
	EmitBatch(ctx context.Context, batch []Event) error
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

// DropReasonsReporter is implemented by sources and sinks that drop events
// for reasons of their own (a gadget source: kernel; a NATS sink:
// spool_full, too_large, ...): the pipeline registers their drop counters
// at zero when it starts, so that every series a component can emit exists
// from the start.
type DropReasonsReporter interface {
	DropReasons() []string
}

// LossReporter is implemented by the Emitter a pipeline hands to each source.
// Sources find it by type assertion and report events lost before they were
// numbered (ring buffer reserve failures, lost perf samples), so that the
// loss is counted and appears in the stream as a loss record. Safe for
// concurrent use.
type LossReporter interface {
	ReportLoss(source, gadget, reason string, count uint64)
}

// FilterReporter is implemented by the Emitter a pipeline hands to each
// source. Sources that filter before they emit (a gadget's kernel filter)
// report what they left out, which is counted as received and dropped
// with reason "filtered", with no loss record: nothing was lost that the
// config asked for. Safe for concurrent use.
type FilterReporter interface {
	ReportFiltered(source string, count uint64)
}
