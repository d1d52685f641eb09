package wasmstages

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// The data model an Inspektor Gadget module sees: data sources (the
// gadget's outputs and the module's own), their fields, and data (one
// event) and arrays (one snapshot), all reached through numeric handles.
// Events are msgpack maps: a datum decodes its event into key/value pairs
// only when a field of it is read or written, and an event nobody changed
// leaves the module as the same bytes.

// Field kinds of IG's API (its api.Kind).
const (
	igKindInvalid = iota
	igKindBool
	igKindInt8
	igKindInt16
	igKindInt32
	igKindInt64
	igKindUint8
	igKindUint16
	igKindUint32
	igKindUint64
	igKindFloat32
	igKindFloat64
	igKindString
	igKindCString
	igKindBytes
)

// Data source types of IG's API.
const (
	igDSUndefined = 0
	igDSSingle    = 1
	igDSArray     = 2
)

// Subscription types of IG's API.
const (
	igSubData   = 1
	igSubArray  = 2
	igSubPacket = 3
)

// Handles: IG keeps at most 4096 objects per module; 0 is no handle. An
// element of an array is addressed without a handle of its own, as IG
// does: the flag, the element's index << 16 and the array's handle.
const (
	igMaxHandles    = 4096
	igArrayElemFlag = uint32(1) << 31
	igMaxArrayIndex = 1<<15 - 1
	// igMaxEmitDepth bounds packets emitted into a data source the module
	// itself subscribes to, whose callback emits again.
	igMaxEmitDepth = 4
)

// igSession is the state of one instance: its handles and what it
// subscribed to. A replacement instance gets a new session.
type igSession struct {
	objs map[uint32]any
	last uint32
}

func newIGSession() *igSession { return &igSession{objs: map[uint32]any{}} }

// add returns a new handle for o, 0 when the module holds too many.
func (s *igSession) add(o any) uint32 {
	if len(s.objs) >= igMaxHandles {
		return 0
	}
	h := s.last
	for {
		h++
		if h == 0 || h >= igArrayElemFlag {
			h = 1
		}
		if _, used := s.objs[h]; !used {
			s.objs[h] = o
			s.last = h
			return h
		}
	}
}

func (s *igSession) del(h uint32) { delete(s.objs, h) }

// igGet returns the object of handle h as a T.
func igGet[T any](s *igSession, h uint32) (T, error) {
	var zero T
	o, ok := s.objs[h]
	if !ok {
		return zero, fmt.Errorf("handle %d is not open", h)
	}
	t, ok := o.(T)
	if !ok {
		return zero, fmt.Errorf("handle %d is a %s, not a %s", h, igTypeName(o), igTypeName(zero))
	}
	return t, nil
}

func igTypeName(o any) string {
	switch o.(type) {
	case *igDataSource:
		return "data source"
	case *igField:
		return "field"
	case *igData:
		return "data"
	case *igArray:
		return "data array"
	case *igMap:
		return "map"
	case *igPerf:
		return "perf reader"
	}
	return fmt.Sprintf("%T", o)
}

// igDataSource is one data source: a gadget output or one the module
// created.
type igDataSource struct {
	name   string
	array  bool
	output int              // index of the gadget's output; -1 for the module's own, igHostOutput for the host's
	schema *pipeline.Schema // the output's (or the host's) schema; nil for the module's own
	fields map[string]*igField
	added  []*igField // fields the module added, in order
	subs   []igSub
	// unreferenced: the module consumes the data source itself; its
	// events do not go on past the module.
	unreferenced bool
	out          *pipeline.Schema // schema of the events leaving the module, made on demand
}

type igSub struct {
	typ, ds uint32 // subscription type; the data source handle the guest gave
	prio    int32
	cb      uint64
}

// igField is a field of a data source.
type igField struct {
	ds    *igDataSource
	name  string
	kind  uint32             // the IG kind of an added field; 0 for the gadget's
	fkind pipeline.FieldKind // how sinks see it
	added bool
	// isStruct: a struct of the gadget's, whose members are the schema's
	// fields named "<name>.*" (see ig_struct.go).
	isStruct bool
	tags     []string
}

// igKV is one key of a decoded event; val is a msgpack value.
type igKV struct {
	key string
	val []byte
}

// igData is one event: an input of the batch, a new packet, or an array
// element.
type igData struct {
	ds      *igDataSource
	in      int    // the input's index in the batch; -1 for data the module made
	orig    []byte // the input's encoded event
	kv      []igKV
	decoded bool
	changed bool
	dropped bool
}

// igArray is a snapshot: the rows of an array data source in one batch,
// or an array packet the module builds.
type igArray struct {
	ds    *igDataSource
	items []*igData
	input bool // the batch's rows (dataSourceRelease drops them)
}

// igMap is a map a module holds.
type igMap struct {
	MapHandle
	owned OwnedMap // set when the module created it
}

type igPerf struct{ r PerfReader }

// igBatch is the state of one Process call.
type igBatch struct {
	in       []pipeline.Event
	data     []*igData          // per input, nil when no callback saw it
	after    [][]pipeline.Event // packets emitted while input i was processed
	cur      int                // the input being processed; -1 outside
	deadline time.Time
	ctx      context.Context
	inst     *instance
	depth    int
}

// field returns the data source's field called name: one of its schema or
// one the module added.
func (ds *igDataSource) field(name string) (*igField, bool) {
	if f, ok := ds.fields[name]; ok {
		return f, true
	}
	if ds.schema == nil {
		return nil, false
	}
	for _, sf := range ds.schema.Fields {
		if sf.Name == name {
			f := &igField{ds: ds, name: name, fkind: sf.Kind}
			ds.fields[name] = f
			return f, true
		}
	}
	if ds.isStructName(name) {
		f := &igField{ds: ds, name: name, isStruct: true}
		ds.fields[name] = f
		return f, true
	}
	return nil, false
}

// addField adds a field of IG kind; a replacement instance adding the same
// field again gets it back.
func (ds *igDataSource) addField(name string, kind uint32) (*igField, error) {
	if name == "" {
		return nil, fmt.Errorf("add field to data source %q: empty name", ds.name)
	}
	if kind == igKindInvalid || kind > igKindBytes {
		return nil, fmt.Errorf("add field %q to data source %q: invalid kind %d", name, ds.name, kind)
	}
	if f, ok := ds.field(name); ok {
		if f.added && f.kind == kind {
			return f, nil
		}
		return nil, fmt.Errorf("add field %q to data source %q: the data source has such a field already", name, ds.name)
	}
	if slices.Contains(envelopeKeys, name) {
		return nil, fmt.Errorf("add field %q to data source %q: %q is an envelope key of every event", name, ds.name, name)
	}
	f := &igField{ds: ds, name: name, kind: kind, fkind: igFieldKind(kind), added: true}
	ds.fields[name] = f
	ds.added = append(ds.added, f)
	ds.out = nil
	return f, nil
}

// envelopeKeys are the keys every event starts with (docs/event-format.md).
var envelopeKeys = []string{"time", "host", "source", "gadget", "seq"}

func igFieldKind(kind uint32) pipeline.FieldKind {
	switch kind {
	case igKindBool:
		return pipeline.FieldBool
	case igKindInt8, igKindInt16, igKindInt32, igKindInt64:
		return pipeline.FieldInt
	case igKindUint8, igKindUint16, igKindUint32, igKindUint64:
		return pipeline.FieldUint
	case igKindFloat32, igKindFloat64:
		return pipeline.FieldFloat
	case igKindBytes:
		return pipeline.FieldBytes
	}
	return pipeline.FieldString
}

// outSchema is the schema of the data source's events as they leave the
// module: the output's, with the added fields and the module's
// annotations (setConfig).
func (m *IGModule) outSchema(ds *igDataSource) *pipeline.Schema {
	if ds.out != nil {
		return ds.out
	}
	var s pipeline.Schema
	if ds.schema != nil {
		s = *ds.schema
		s.Fields = slices.Clone(ds.schema.Fields)
	} else {
		s = pipeline.Schema{Gadget: m.cfg.Gadget, Type: ds.name, Fields: []pipeline.Field{
			{Name: "time", Kind: pipeline.FieldString, Width: 30},
			{Name: "host", Kind: pipeline.FieldString, Width: 12},
			{Name: "source", Kind: pipeline.FieldString, Width: 10},
			{Name: "gadget", Kind: pipeline.FieldString, Width: 16},
			{Name: "seq", Kind: pipeline.FieldUint, Width: 8},
		}}
	}
	for _, f := range ds.added {
		s.Fields = append(s.Fields, pipeline.Field{Name: f.name, Kind: f.fkind, Width: 16})
	}
	prefix := "datasources." + ds.name + ".fields."
	for i := range s.Fields {
		f := &s.Fields[i]
		ann := prefix + f.Name + ".annotations."
		if v, ok := m.config[ann+"description"]; ok {
			f.Doc = v
		}
		if v, ok := m.config[ann+"columns.hidden"]; ok {
			f.Hidden = v == "true"
		}
		if v, ok := m.config[ann+"columns.width"]; ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				f.Width = n
			}
		}
	}
	ds.out = &s
	return ds.out
}

// decode splits the datum's event into keys and values, once.
func (d *igData) decode() error {
	if d.decoded {
		return nil
	}
	d.decoded = true
	if d.orig == nil {
		return nil
	}
	n, rest, err := codec.ReadMapHeader(d.orig)
	if err != nil {
		return fmt.Errorf("decode event: %w", err)
	}
	d.kv = make([]igKV, 0, n+len(d.ds.added))
	for range n {
		k, r, err := codec.ReadString(rest)
		if err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		sz, err := codec.Skip(r)
		if err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		d.kv = append(d.kv, igKV{key: string(k), val: r[:sz]})
		rest = r[sz:]
	}
	return nil
}

// value returns the datum's value of field f (the kind's zero for an added
// field the module has not set).
func (d *igData) value(f *igField) ([]byte, error) {
	if err := d.decode(); err != nil {
		return nil, err
	}
	for _, kv := range d.kv {
		if kv.key == f.name {
			return kv.val, nil
		}
	}
	if f.added {
		return igZero(f.kind), nil
	}
	if d.in < 0 {
		// A packet the module made has every field of its data source,
		// zero until set (as IG's packets do).
		return fieldZero(f.fkind), nil
	}
	return nil, fmt.Errorf("the event has no field %q", f.name)
}

func (d *igData) set(name string, val []byte) error {
	if err := d.decode(); err != nil {
		return err
	}
	d.changed = true
	for i := range d.kv {
		if d.kv[i].key == name {
			d.kv[i].val = val
			return nil
		}
	}
	d.kv = append(d.kv, igKV{key: name, val: val})
	return nil
}

// encode appends the datum as an event: its keys in order, the added
// fields of its data source last (zero when unset). A datum nothing
// changed, of a data source without added fields, is its input's bytes.
func (d *igData) encode(dst []byte) ([]byte, error) {
	if !d.changed && len(d.ds.added) == 0 && d.orig != nil {
		return append(dst, d.orig...), nil
	}
	if err := d.decode(); err != nil {
		return dst, err
	}
	if d.in < 0 && d.ds.schema != nil {
		d.fillSchema()
	}
	n := 0
	for _, kv := range d.kv {
		if f, ok := d.ds.fields[kv.key]; !ok || !f.added {
			n++
		}
	}
	dst = codec.AppendMapHeader(dst, n+len(d.ds.added))
	for _, kv := range d.kv {
		if f, ok := d.ds.fields[kv.key]; ok && f.added {
			continue
		}
		dst = codec.AppendString(dst, kv.key)
		dst = append(dst, kv.val...)
	}
	for _, f := range d.ds.added {
		val := igZero(f.kind)
		for _, kv := range d.kv {
			if kv.key == f.name {
				val = kv.val
				break
			}
		}
		dst = codec.AppendString(dst, f.name)
		dst = append(dst, val...)
	}
	return dst, nil
}

// fillSchema gives a packet the module made for one of the gadget's
// outputs every field of the output's schema, in the schema's order:
// the ones it set, the others zero.
func (d *igData) fillSchema() {
	kv := make([]igKV, 0, len(d.ds.schema.Fields)+len(d.kv))
	for _, sf := range d.ds.schema.Fields {
		val := fieldZero(sf.Kind)
		for _, have := range d.kv {
			if have.key == sf.Name {
				val = have.val
				break
			}
		}
		kv = append(kv, igKV{key: sf.Name, val: val})
	}
	for _, have := range d.kv {
		if !slices.ContainsFunc(kv, func(x igKV) bool { return x.key == have.key }) {
			kv = append(kv, have)
		}
	}
	d.kv = kv
}

// igZero is the msgpack zero value of an IG kind.
func igZero(kind uint32) []byte { return fieldZero(igFieldKind(kind)) }

// fieldZero is the msgpack zero value of a field kind.
func fieldZero(kind pipeline.FieldKind) []byte {
	switch kind {
	case pipeline.FieldList:
		return codec.AppendArrayHeader(nil, 0)
	case pipeline.FieldBool:
		return codec.AppendBool(nil, false)
	case pipeline.FieldInt:
		return codec.AppendInt(nil, 0)
	case pipeline.FieldUint:
		return codec.AppendUint(nil, 0)
	case pipeline.FieldFloat:
		return codec.AppendFloat64(nil, 0)
	case pipeline.FieldBytes:
		return codec.AppendBytes(nil, nil)
	}
	return codec.AppendString(nil, "")
}

// scalar reads a msgpack value as IG kind kind: the number (floats as
// their IEEE 754 bits), or an error when the value is of another kind or
// does not fit.
func igScalar(raw []byte, kind uint32) (uint64, error) {
	if len(raw) == 0 {
		return 0, fmt.Errorf("empty value")
	}
	c := raw[0]
	switch kind {
	case igKindBool:
		b, _, err := codec.ReadBool(raw)
		if err != nil {
			return 0, fmt.Errorf("not a bool")
		}
		if b {
			return 1, nil
		}
		return 0, nil
	case igKindFloat32, igKindFloat64:
		var f float64
		switch {
		case c == 0xca || c == 0xcb:
			v, _, err := codec.ReadFloat64(raw)
			if err != nil {
				return 0, err
			}
			f = v
		case isMsgpackUint(c):
			v, _, err := codec.ReadUint(raw)
			if err != nil {
				return 0, err
			}
			f = float64(v)
		case isMsgpackInt(c):
			v, _, err := codec.ReadInt(raw)
			if err != nil {
				return 0, err
			}
			f = float64(v)
		default:
			return 0, fmt.Errorf("not a number")
		}
		if kind == igKindFloat32 {
			return uint64(math.Float32bits(float32(f))), nil
		}
		return math.Float64bits(f), nil
	case igKindString, igKindCString, igKindBytes:
		return 0, fmt.Errorf("a string or bytes field is read with fieldGetBuffer")
	}
	bitsOf := map[uint32]uint{igKindInt8: 8, igKindInt16: 16, igKindInt32: 32, igKindInt64: 64, igKindUint8: 8, igKindUint16: 16, igKindUint32: 32, igKindUint64: 64}
	bits, ok := bitsOf[kind]
	if !ok {
		return 0, fmt.Errorf("invalid kind %d", kind)
	}
	signed := kind <= igKindInt64
	switch {
	case isMsgpackUint(c):
		v, _, err := codec.ReadUint(raw)
		if err != nil {
			return 0, err
		}
		if (signed && v > math.MaxInt64>>(64-bits)) || (!signed && bits < 64 && v >= 1<<bits) {
			return 0, fmt.Errorf("%d does not fit a %d-bit %s", v, bits, map[bool]string{true: "int", false: "uint"}[signed])
		}
		return v, nil
	case isMsgpackInt(c):
		v, _, err := codec.ReadInt(raw)
		if err != nil {
			return 0, err
		}
		if !signed && v < 0 {
			return 0, fmt.Errorf("%d is negative, read as a uint", v)
		}
		if signed && bits < 64 && (v < -(1<<(bits-1)) || v >= 1<<(bits-1)) {
			return 0, fmt.Errorf("%d does not fit a %d-bit int", v, bits)
		}
		return uint64(v), nil
	}
	return 0, fmt.Errorf("not an integer")
}

// isMsgpackUint: positive fixint or uint 8..64.
func isMsgpackUint(c byte) bool { return c <= 0x7f || (c >= 0xcc && c <= 0xcf) }

// isMsgpackInt: negative fixint or int 8..64.
func isMsgpackInt(c byte) bool { return c >= 0xe0 || (c >= 0xd0 && c <= 0xd3) }

// igEncode encodes a scalar value of fieldSet (floats as IEEE 754 bits) as
// msgpack.
func igEncodeScalar(kind uint32, v uint64) ([]byte, error) {
	switch kind {
	case igKindBool:
		return codec.AppendBool(nil, v != 0), nil
	case igKindInt8:
		return codec.AppendInt(nil, int64(int8(v))), nil
	case igKindInt16:
		return codec.AppendInt(nil, int64(int16(v))), nil
	case igKindInt32:
		return codec.AppendInt(nil, int64(int32(v))), nil
	case igKindInt64:
		return codec.AppendInt(nil, int64(v)), nil
	case igKindUint8:
		return codec.AppendUint(nil, uint64(uint8(v))), nil
	case igKindUint16:
		return codec.AppendUint(nil, uint64(uint16(v))), nil
	case igKindUint32:
		return codec.AppendUint(nil, uint64(uint32(v))), nil
	case igKindUint64:
		return codec.AppendUint(nil, v), nil
	case igKindFloat32:
		return codec.AppendFloat64(nil, float64(math.Float32frombits(uint32(v)))), nil
	case igKindFloat64:
		return codec.AppendFloat64(nil, math.Float64frombits(v)), nil
	}
	return nil, fmt.Errorf("invalid kind %d", kind)
}

// checkSetKind refuses a value of IG kind kind for field f when sinks see
// f as another kind of value (IG's accessors are typed likewise).
func checkSetKind(f *igField, kind uint32) error {
	want := igFieldKind(kind)
	got := f.fkind
	if f.added {
		got = igFieldKind(f.kind)
	}
	if want == got || (want == pipeline.FieldInt || want == pipeline.FieldUint) && (got == pipeline.FieldInt || got == pipeline.FieldUint) {
		return nil
	}
	return fmt.Errorf("field %q holds %s values; kind %d is %s", f.name, fieldKindName(got), kind, fieldKindName(want))
}

func fieldKindName(k pipeline.FieldKind) string {
	switch k {
	case pipeline.FieldInt, pipeline.FieldUint:
		return "integer"
	case pipeline.FieldBool:
		return "bool"
	case pipeline.FieldFloat:
		return "float"
	case pipeline.FieldString:
		return "string"
	case pipeline.FieldList:
		return "list"
	case pipeline.FieldBytes:
		return "bytes"
	}
	return "unknown"
}

// newData makes a datum for a new packet of ds. A packet of one of the
// gadget's outputs made while an input of it is processed starts with
// that input's envelope; others start with a fresh one (time now, the
// source's, and the input's sequence number when there is one).
func (m *IGModule) newData(ds *igDataSource) *igData {
	d := &igData{ds: ds, in: -1, decoded: true}
	var tmpl *igData
	if b := m.batch; b != nil && b.cur >= 0 {
		tmpl = b.data[b.cur]
		if tmpl == nil {
			tmpl = &igData{ds: ds, in: b.cur, orig: b.in[b.cur].Data}
		}
	}
	if tmpl != nil && tmpl.ds == ds {
		if tmpl.decode() == nil {
			for _, kv := range tmpl.kv {
				if slices.Contains(envelopeKeys, kv.key) || kv.key == "snapshot" || kv.key == "snapshot_rows" {
					d.kv = append(d.kv, kv)
				}
			}
			return d
		}
	}
	var seq uint64
	if tmpl != nil {
		seq = m.batch.in[tmpl.in].Seq
	}
	d.kv = []igKV{
		{"time", codec.AppendString(nil, time.Now().UTC().Format(time.RFC3339Nano))},
		{"host", codec.AppendString(nil, m.cfg.Host)},
		{"source", codec.AppendString(nil, m.cfg.Source)},
		{"gadget", codec.AppendString(nil, m.cfg.Gadget)},
		{"seq", codec.AppendUint(nil, seq)},
	}
	return d
}

// emit makes an event of a datum the module emits and delivers it to the
// module's own subscriptions of its data source first.
func (m *IGModule) emit(d *igData) error {
	if b := m.batch; b != nil && len(d.ds.subs) > 0 && b.depth < igMaxEmitDepth {
		b.depth++
		err := m.dispatchData(d, -1)
		b.depth--
		if err != nil {
			return err
		}
	}
	if d.dropped || d.ds.unreferenced || d.ds.output == igHostOutput {
		return nil
	}
	data, err := d.encode(nil)
	if err != nil {
		return err
	}
	// Its own identity (pipeline.Event): the module's outputs reach the
	// pipeline in batches of their own, so it is an unsequenced Part,
	// under the Seq of the event it was made for (0 outside a batch).
	ev := pipeline.Event{Data: data, Schema: m.outSchema(d.ds), Source: m.cfg.Source, Part: pipeline.UnsequencedPart()}
	if b := m.batch; b != nil && b.cur >= 0 {
		ev.Seq = b.in[b.cur].Seq
		b.after[b.cur] = append(b.after[b.cur], ev)
		return nil
	}
	m.pending = append(m.pending, ev)
	return nil
}

// Process runs a batch of the gadget's events through the module's
// subscriptions: each event (or each snapshot, for array data sources)
// goes to the callbacks of its data source in priority order. Events come
// out in input order, changed ones re-encoded, dropped ones (and those of
// data sources the module unreferenced) left out, the packets the module
// emitted after the event they were emitted for. On a failure (a
// *pipeline.StageError) the instance is replaced before the next batch and
// the caller decides what becomes of the batch.
func (m *IGModule) Process(ctx context.Context, in, out []pipeline.Event) ([]pipeline.Event, error) {
	s := m.stage
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return out, ErrClosed
	}
	if len(in) == 0 {
		return out, nil
	}
	v := s.cur
	inst, err := s.slot(ctx, v, 0)
	if err != nil {
		return out, err
	}
	b := &igBatch{in: in, data: make([]*igData, len(in)), after: make([][]pipeline.Event, len(in)), cur: -1,
		deadline: time.Now().Add(s.cfg.Timeout), ctx: ctx, inst: inst}
	m.batch = b
	err = m.dispatchBatch()
	m.batch = nil
	if inst.broken {
		s.discard(ctx, v, 0, err)
	}
	if err != nil {
		return out, err
	}
	start := len(out)
	for i, ev := range in {
		ds := m.bySchema[ev.Schema]
		d := b.data[i]
		switch {
		case ds != nil && ds.unreferenced, d != nil && d.dropped:
		case d != nil && (d.changed || len(ds.added) > 0):
			data, err := d.encode(nil)
			if err != nil {
				clear(out[start:])
				return out[:start], callError(KindMalformed, "re-encode event %d: %v", i, err)
			}
			out = append(out, pipeline.Event{Data: data, Schema: m.outSchema(ds), Source: ev.Source, Seq: ev.Seq, Part: ev.Part, MntNS: ev.MntNS})
		case ds != nil && len(ds.added) > 0:
			// Not seen by a callback, but its data source has added
			// fields: it gets them, unset.
			d = &igData{ds: ds, in: i, orig: ev.Data}
			data, err := d.encode(nil)
			if err != nil {
				clear(out[start:])
				return out[:start], callError(KindMalformed, "re-encode event %d: %v", i, err)
			}
			out = append(out, pipeline.Event{Data: data, Schema: m.outSchema(ds), Source: ev.Source, Seq: ev.Seq, Part: ev.Part, MntNS: ev.MntNS})
		default:
			out = append(out, ev)
		}
		out = append(out, b.after[i]...)
	}
	return out, nil
}

// dispatchBatch calls the subscriptions for every event of the batch.
func (m *IGModule) dispatchBatch() error {
	b := m.batch
	for i := 0; i < len(b.in); {
		ds := m.bySchema[b.in[i].Schema]
		if ds == nil || len(ds.subs) == 0 {
			i++
			continue
		}
		if !ds.array {
			d := &igData{ds: ds, in: i, orig: b.in[i].Data}
			b.data[i] = d
			b.cur = i
			if err := m.dispatchData(d, i); err != nil {
				return err
			}
			b.cur = -1
			i++
			continue
		}
		// The consecutive rows of one array data source are one snapshot.
		j := i
		arr := &igArray{ds: ds, input: true}
		for ; j < len(b.in) && b.in[j].Schema == b.in[i].Schema; j++ {
			d := &igData{ds: ds, in: j, orig: b.in[j].Data}
			b.data[j] = d
			arr.items = append(arr.items, d)
		}
		b.cur = j - 1 // packets emitted for the snapshot follow its last row
		if err := m.dispatchArray(arr); err != nil {
			return err
		}
		b.cur = -1
		i = j
	}
	return nil
}

// dispatchData calls the subscriptions of d's data source with d.
func (m *IGModule) dispatchData(d *igData, in int) error {
	for _, sub := range d.ds.subs {
		if d.dropped {
			return nil
		}
		if err := m.callback(sub, d); err != nil {
			return err
		}
	}
	return nil
}

// dispatchArray calls the subscriptions of an array data source with a
// snapshot: array and packet subscriptions once, data subscriptions per
// row. Rows the module appends go out after the snapshot's last row.
func (m *IGModule) dispatchArray(arr *igArray) error {
	b := m.batch
	n := len(arr.items)
	for _, sub := range arr.ds.subs {
		var err error
		if sub.typ == igSubData {
			for _, d := range arr.items {
				if !d.dropped {
					if err = m.callback(sub, d); err != nil {
						break
					}
				}
			}
		} else {
			err = m.callback(sub, arr)
		}
		if err != nil {
			return err
		}
	}
	var rows []pipeline.Event
	for _, d := range arr.items[n:] {
		if d.dropped {
			continue
		}
		data, err := d.encode(nil)
		if err != nil {
			return callError(KindMalformed, "encode appended row: %v", err)
		}
		rows = append(rows, pipeline.Event{Data: data, Schema: m.outSchema(arr.ds), Source: m.cfg.Source, Seq: b.in[b.cur].Seq, Part: pipeline.UnsequencedPart()})
	}
	if len(rows) > 0 {
		b.after[b.cur] = append(rows, b.after[b.cur]...)
	}
	return nil
}

// callback calls dataSourceCallback(cb, ds, obj) with a handle to obj that
// lives for the call.
func (m *IGModule) callback(sub igSub, obj any) error {
	b := m.batch
	h := m.sess.add(obj)
	if h == 0 {
		return callError(KindGuest, "dataSourceCallback: the module holds %d handles, the most it may; release the ones it no longer needs", igMaxHandles)
	}
	defer m.sess.del(h)
	inst := b.inst
	fn := inst.mod.ExportedFunction("dataSourceCallback")
	inst.stack[0], inst.stack[1], inst.stack[2] = sub.cb, uint64(sub.ds), uint64(h)
	return inst.callUntil(b.ctx, b.deadline, m.stage.cfg.Timeout, fn, "dataSourceCallback")
}

// dataOf returns the datum a data handle names: a data object, or an
// element of an array.
func (m *IGModule) dataOf(h uint32) (*igData, error) {
	if h&igArrayElemFlag == 0 {
		return igGet[*igData](m.sess, h)
	}
	arr, err := igGet[*igArray](m.sess, h&0xffff)
	if err != nil {
		return nil, err
	}
	i := int(h&^igArrayElemFlag) >> 16
	if i >= len(arr.items) {
		return nil, fmt.Errorf("data array %d has %d elements; no element %d", h&0xffff, len(arr.items), i)
	}
	return arr.items[i], nil
}

// dsName is for messages.
func dsName(ds *igDataSource) string {
	if ds.output == igHostOutput {
		return "data source " + strconv.Quote(ds.name) + " (the host's)"
	}
	if ds.output < 0 {
		return strings.Join([]string{"data source", strconv.Quote(ds.name), "(the module's)"}, " ")
	}
	return "data source " + strconv.Quote(ds.name)
}
