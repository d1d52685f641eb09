package pipeline

import (
	"context"
	"slices"
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
type Event struct {
	Data   []byte
	Schema *Schema // field layout of Data; nil when unknown (e.g. made by a stage)
	Source string  // the config name of the source that produced the event
	Seq    uint64  // per-source sequence number, gap-free unless a drop was counted
	// Time is when the event happened, in Unix nanoseconds: the envelope's
	// time as the source wrote it (the kernel's timestamp where the gadget
	// records one). An event a stage derives from an input keeps the
	// input's; 0 is unknown. The sinks' latency histograms measure from it.
	Time int64
	Kind Kind
}

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
