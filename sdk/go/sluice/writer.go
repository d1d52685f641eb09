package sluice

import (
	"encoding/binary"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// Writer builds msgpack values, nested maps and lists included, for
// Event.SetValue and Output.EmitBytes, counting entries for you:
//
//	var w sluice.Writer
//	w.BeginMap()
//	w.Key("pid").Int(ev.Int("pid"))
//	w.Key("name").String(ev.String("comm"))
//	w.EndMap()
//	ev.SetValue("process", w.Value())
//
// A Writer is reusable after Reset and keeps its buffer, so one per stage
// allocates nothing in steady state. It does not check that keys and values
// alternate; SetValue and EmitBytes reject what is not well-formed.
type Writer struct {
	buf   []byte
	stack []wframe
}

type wframe struct {
	at    int // offset of the 5-byte header
	n     int // entries (maps: keys) written
	isMap bool
}

// Reset empties the writer, keeping its buffer.
func (w *Writer) Reset() *Writer {
	w.buf, w.stack = w.buf[:0], w.stack[:0]
	return w
}

// Bytes returns what was written. It aliases the writer's buffer.
func (w *Writer) Bytes() []byte { return w.buf }

// Value returns what was written as a Value (aliasing the buffer).
func (w *Writer) Value() Value { return Value{raw: w.buf} }

// count records one value in the enclosing list (map entries are counted
// by Key).
func (w *Writer) count() {
	if n := len(w.stack); n > 0 && !w.stack[n-1].isMap {
		w.stack[n-1].n++
	}
}

// BeginMap opens a map; close it with EndMap.
func (w *Writer) BeginMap() *Writer {
	w.count()
	w.stack = append(w.stack, wframe{at: len(w.buf), isMap: true})
	w.buf = codec.AppendMapHeader32(w.buf)
	return w
}

// BeginArray opens a list; close it with EndArray.
func (w *Writer) BeginArray() *Writer {
	w.count()
	w.stack = append(w.stack, wframe{at: len(w.buf)})
	w.buf = codec.AppendArrayHeader32(w.buf)
	return w
}

// EndMap closes the innermost map.
func (w *Writer) EndMap() *Writer { return w.end() }

// EndArray closes the innermost list.
func (w *Writer) EndArray() *Writer { return w.end() }

// end writes the innermost container's count into the smallest header
// that holds it, moving its contents back over the unused header bytes.
func (w *Writer) end() *Writer {
	if len(w.stack) == 0 {
		panic("sluice: Writer: End without Begin")
	}
	f := w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
	var hdr [5]byte
	var h []byte
	if f.isMap {
		h = codec.AppendMapHeader(hdr[:0], f.n)
	} else {
		h = codec.AppendArrayHeader(hdr[:0], f.n)
	}
	if len(h) == 5 {
		binary.BigEndian.PutUint32(w.buf[f.at+1:], uint32(f.n))
		return w
	}
	copy(w.buf[f.at:], h)
	n := copy(w.buf[f.at+len(h):], w.buf[f.at+5:])
	w.buf = w.buf[:f.at+len(h)+n]
	return w
}

// Key writes a map key; the value follows.
func (w *Writer) Key(k string) *Writer {
	if n := len(w.stack); n > 0 && w.stack[n-1].isMap {
		w.stack[n-1].n++
	}
	w.buf = codec.AppendString(w.buf, k)
	return w
}

// String writes a str.
func (w *Writer) String(s string) *Writer {
	w.count()
	w.buf = codec.AppendString(w.buf, s)
	return w
}

// StringBytes writes a str holding b.
func (w *Writer) StringBytes(b []byte) *Writer {
	w.count()
	w.buf = codec.AppendStringBytes(w.buf, b)
	return w
}

// Int writes an integer.
func (w *Writer) Int(v int64) *Writer {
	w.count()
	w.buf = codec.AppendInt(w.buf, v)
	return w
}

// Uint writes a non-negative integer.
func (w *Writer) Uint(v uint64) *Writer {
	w.count()
	w.buf = codec.AppendUint(w.buf, v)
	return w
}

// Float writes a float64.
func (w *Writer) Float(v float64) *Writer {
	w.count()
	w.buf = codec.AppendFloat64(w.buf, v)
	return w
}

// Bool writes a boolean.
func (w *Writer) Bool(v bool) *Writer {
	w.count()
	w.buf = codec.AppendBool(w.buf, v)
	return w
}

// Nil writes a nil.
func (w *Writer) Nil() *Writer {
	w.count()
	w.buf = codec.AppendNil(w.buf)
	return w
}

// Raw writes an encoded value as it is (a field of an event, say); a
// missing Value writes nil.
func (w *Writer) Raw(v Value) *Writer {
	w.count()
	if len(v.raw) == 0 {
		w.buf = codec.AppendNil(w.buf)
	} else {
		w.buf = append(w.buf, v.raw...)
	}
	return w
}

// Any writes a Go value as Event.Set encodes it.
func (w *Writer) Any(v any) *Writer {
	w.count()
	w.buf = appendAny(w.buf, v, "Writer.Any")
	return w
}
