package pipeline

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// Drop reasons used by the pipeline runtime. Sources and sinks may add their
// own (a gadget source reports ReasonKernel).
const (
	ReasonQueueFull = "queue_full" // a bounded queue was full under a drop policy
	ReasonShutdown  = "shutdown"   // still queued or blocked when the grace period ran out
	ReasonSinkError = "sink_error" // Sink.Write failed; the batch is not retried
	ReasonKernel    = "kernel"     // lost in the kernel before the reader saw it
	// ReasonFiltered counts events a stage removed on purpose. It is a drop in
	// the metrics (so received = sent + dropped holds) but not a loss: it
	// never produces a loss record.
	ReasonFiltered = "filtered"
)

// LossSchema describes the keys of a loss record's Data, in encoding order.
// Sinks that render columns use it for KindLoss events. It must not be
// modified.
var LossSchema = &Schema{
	Type: "loss",
	Fields: []Field{
		{Name: "time", Kind: FieldString, Width: 30},
		{Name: "host", Kind: FieldString, Width: 16},
		{Name: "source", Kind: FieldString, Width: 16},
		{Name: "gadget", Kind: FieldString, Width: 16},
		{Name: "type", Kind: FieldString, Width: 4},
		{Name: "reason", Kind: FieldString, Width: 12},
		{Name: "component", Kind: FieldString, Width: 20},
		{Name: "count", Kind: FieldUint, Width: 8},
		{Name: "seq_first", Kind: FieldUint, Width: 10, Doc: "nil when unknown"},
		{Name: "seq_last", Kind: FieldUint, Width: 10, Doc: "nil when unknown"},
	},
}

type lossKey struct {
	source, gadget, component, reason string
}

type lossAgg struct {
	count             uint64
	seqFirst, seqLast uint64 // 0: unknown (sequence numbers start at 1)
}

// LossTracker aggregates dropped events by (source, gadget, component,
// reason) between two flushes. All methods are safe for concurrent use; a
// count added concurrently with Flush lands in that flush or the next one,
// never in neither.
type LossTracker struct {
	mu sync.Mutex
	m  map[lossKey]*lossAgg
}

// NewLossTracker returns an empty tracker.
func NewLossTracker() *LossTracker {
	return &LossTracker{m: make(map[lossKey]*lossAgg)}
}

// Add records count lost events. seqFirst and seqLast bound their sequence
// numbers; pass 0 for both when the numbers are unknown (kernel losses happen
// before numbering). Safe for concurrent use.
func (t *LossTracker) Add(source, gadget, component, reason string, count, seqFirst, seqLast uint64) {
	if count == 0 {
		return
	}
	k := lossKey{source, gadget, component, reason}
	t.mu.Lock()
	a := t.m[k]
	if a == nil {
		a = new(lossAgg)
		t.m[k] = a
	}
	a.count += count
	if seqFirst != 0 && (a.seqFirst == 0 || seqFirst < a.seqFirst) {
		a.seqFirst = seqFirst
	}
	if seqLast != 0 && seqLast > a.seqLast {
		a.seqLast = seqLast
	}
	t.mu.Unlock()
}

// Flush returns one loss record per aggregate recorded since the previous
// Flush, in a stable order, and resets the aggregates. It returns nil when
// nothing was lost. Safe for concurrent use.
func (t *LossTracker) Flush(now time.Time, host string) []Event {
	t.mu.Lock()
	if len(t.m) == 0 {
		t.mu.Unlock()
		return nil
	}
	type entry struct {
		k lossKey
		a *lossAgg
	}
	entries := make([]entry, 0, len(t.m))
	for k, a := range t.m {
		entries = append(entries, entry{k, a})
	}
	t.m = make(map[lossKey]*lossAgg)
	t.mu.Unlock()

	slices.SortFunc(entries, func(x, y entry) int {
		return cmp.Or(
			cmp.Compare(x.k.source, y.k.source),
			cmp.Compare(x.k.component, y.k.component),
			cmp.Compare(x.k.reason, y.k.reason),
			cmp.Compare(x.k.gadget, y.k.gadget),
		)
	})
	ts := now.UTC().AppendFormat(nil, time.RFC3339Nano)
	out := make([]Event, 0, len(entries))
	for _, e := range entries {
		out = append(out, Event{
			Data:   appendLossRecord(nil, ts, host, e.k, e.a),
			Schema: LossSchema,
			Source: e.k.source,
		})
	}
	return out
}

func appendLossRecord(b, ts []byte, host string, k lossKey, a *lossAgg) []byte {
	b = codec.AppendMapHeader(b, len(LossSchema.Fields))
	b = codec.AppendString(b, "time")
	b = codec.AppendStringBytes(b, ts)
	b = codec.AppendString(b, "host")
	b = codec.AppendString(b, host)
	b = codec.AppendString(b, "source")
	b = codec.AppendString(b, k.source)
	b = codec.AppendString(b, "gadget")
	b = codec.AppendString(b, k.gadget)
	b = codec.AppendString(b, "type")
	b = codec.AppendString(b, "loss")
	b = codec.AppendString(b, "reason")
	b = codec.AppendString(b, k.reason)
	b = codec.AppendString(b, "component")
	b = codec.AppendString(b, k.component)
	b = codec.AppendString(b, "count")
	b = codec.AppendUint(b, a.count)
	b = codec.AppendString(b, "seq_first")
	b = appendSeq(b, a.seqFirst)
	b = codec.AppendString(b, "seq_last")
	b = appendSeq(b, a.seqLast)
	return b
}

func appendSeq(b []byte, seq uint64) []byte {
	if seq == 0 {
		return codec.AppendNil(b)
	}
	return codec.AppendUint(b, seq)
}

// lossRun coalesces consecutive dropped events of one source into a single
// LossTracker.Add, so a drop path takes the tracker's lock once per run of a
// source instead of once per event.
type lossRun struct {
	source, gadget    string
	count             uint64
	seqFirst, seqLast uint64
}

func (r *lossRun) add(t *LossTracker, component, reason string, ev *Event) {
	if ev.Kind() == KindLoss {
		return // a lost loss record is counted in metrics; reporting it would loop
	}
	gadget := ""
	if ev.Schema != nil {
		gadget = ev.Schema.Gadget
	}
	if r.count > 0 && (r.source != ev.Source || r.gadget != gadget) {
		r.flush(t, component, reason)
	}
	if r.count == 0 {
		r.source, r.gadget = ev.Source, gadget
	}
	r.count++
	if s := ev.Seq; s != 0 {
		if r.seqFirst == 0 || s < r.seqFirst {
			r.seqFirst = s
		}
		if s > r.seqLast {
			r.seqLast = s
		}
	}
}

func (r *lossRun) flush(t *LossTracker, component, reason string) {
	if r.count > 0 && t != nil {
		t.Add(r.source, r.gadget, component, reason, r.count, r.seqFirst, r.seqLast)
	}
	*r = lossRun{}
}

// trackLoss reports evs as lost at component for reason.
func trackLoss(t *LossTracker, component, reason string, evs []Event) {
	if t == nil {
		return
	}
	var r lossRun
	for i := range evs {
		r.add(t, component, reason, &evs[i])
	}
	r.flush(t, component, reason)
}
