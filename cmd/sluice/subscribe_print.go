package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/sinks"
)

// wireEvent is one event of a NATS message: a msgpack map or a JSON
// object, or what could not be decoded.
type wireEvent struct {
	data        []byte
	json        bool
	subject     string // for undecodable messages
	undecodable error
}

// Content types of the messages a NATS sink publishes
// (docs/event-format.md).
const (
	contentJSON         = "application/json"
	contentNDJSON       = "application/x-ndjson"
	contentMsgpackArray = "application/vnd.sluice.msgpack-array"
)

// splitEvents calls fn with each event of a message, in order: one for a
// single event, one per event of a batch (a msgpack array or JSON lines).
// An undecodable message is one wireEvent saying why. fn returns false to
// stop. The events alias data.
func splitEvents(subject string, h nats.Header, data []byte, fn func(wireEvent) bool) {
	bad := func(err error) { fn(wireEvent{subject: subject, undecodable: err}) }
	switch h.Get("Content-Type") {
	case contentJSON:
		fn(wireEvent{data: bytes.TrimRight(data, "\n"), json: true})
	case contentNDJSON:
		for len(data) > 0 {
			line, rest, _ := bytes.Cut(data, []byte{'\n'})
			data = rest
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if !fn(wireEvent{data: line, json: true}) {
				return
			}
		}
	case contentMsgpackArray:
		n, rest, err := codec.ReadArrayHeader(data)
		if err != nil {
			bad(err)
			return
		}
		for range n {
			size, err := codec.Skip(rest)
			if err != nil {
				bad(err)
				return
			}
			if !fn(wireEvent{data: rest[:size]}) {
				return
			}
			rest = rest[size:]
		}
	default:
		fn(wireEvent{data: data})
	}
}

// eventPrinter writes events as JSON lines or a table, up to a limit.
type eventPrinter struct {
	w       io.Writer
	table   *sinks.Stdout // nil for JSON lines
	limit   int           // 0: no limit
	printed int
	buf     []byte
	events  []pipeline.Event
}

func newEventPrinter(w io.Writer, format string, limit int) (*eventPrinter, error) {
	p := &eventPrinter{w: w, limit: limit}
	if format == "table" {
		t, err := sinks.NewStdout("subscribe", w, sinks.StdoutOptions{Format: "table"})
		if err != nil {
			return nil, err
		}
		p.table = t
	}
	return p, nil
}

// done tells whether the limit is reached.
func (p *eventPrinter) done() bool { return p.limit > 0 && p.printed >= p.limit }

// printMessage prints the events of one message, as many as the limit
// leaves, with one write.
func (p *eventPrinter) printMessage(subject string, h nats.Header, data []byte) error {
	var err error
	p.begin()
	splitEvents(subject, h, data, func(ev wireEvent) bool {
		if p.done() {
			return false
		}
		p.add(ev)
		return true
	})
	err = p.flush()
	return err
}

// print prints events already split, as many as the limit leaves.
func (p *eventPrinter) print(evs []wireEvent) error {
	p.begin()
	for _, ev := range evs {
		if p.done() {
			break
		}
		p.add(ev)
	}
	return p.flush()
}

func (p *eventPrinter) begin() {
	p.buf = p.buf[:0]
	p.events = p.events[:0]
}

// anySchema marks decoded events for the table: its layout for several
// streams (common columns, then key=value details) fits any event.
var anySchema = &pipeline.Schema{}

func (p *eventPrinter) add(ev wireEvent) {
	p.printed++
	if p.table == nil {
		p.buf = appendJSONLine(p.buf, ev)
		return
	}
	if ev.undecodable != nil {
		p.flushTable()
		fmt.Fprintf(p.w, "-- undecodable message on %s: %v\n", ev.subject, ev.undecodable)
		return
	}
	data := ev.data
	if ev.json {
		var err error
		if data, err = msgpackFromJSON(nil, ev.data); err != nil {
			p.flushTable()
			fmt.Fprintf(p.w, "-- undecodable event: %v\n", err)
			return
		}
	}
	schema := anySchema
	if t, ok := codec.Lookup(data, "type"); ok {
		if s, _, err := codec.ReadString(t); err == nil && string(s) == "loss" {
			schema = pipeline.LossSchema
		}
	}
	p.events = append(p.events, pipeline.Event{Data: data, Schema: schema})
}

func (p *eventPrinter) flushTable() error {
	if len(p.events) == 0 {
		return nil
	}
	err := p.table.Write(context.Background(), p.events)
	p.events = p.events[:0]
	return err
}

func (p *eventPrinter) flush() error {
	if p.table != nil {
		return p.flushTable()
	}
	if len(p.buf) == 0 {
		return nil
	}
	_, err := p.w.Write(p.buf)
	return err
}

// appendJSONLine renders one event as a JSON line.
func appendJSONLine(dst []byte, ev wireEvent) []byte {
	start := len(dst)
	if ev.undecodable == nil {
		if ev.json {
			return append(append(dst, bytes.TrimSpace(ev.data)...), '\n')
		}
		var err error
		if dst, err = codec.AppendJSON(dst, ev.data); err == nil {
			return append(dst, '\n')
		}
		ev.undecodable = err
	}
	return fmt.Appendf(dst[:start], `{"subject":%q,"undecodable":%q}`+"\n", ev.subject, ev.undecodable.Error())
}

// msgpackFromJSON converts one JSON value to msgpack, keeping the order of
// object keys (the table shows fields in the order the event has them).
func msgpackFromJSON(dst, js []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	dst, err := appendJSONValue(dst, dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return dst, nil
}

const maxJSONDepth = 64

func appendJSONValue(dst []byte, dec *json.Decoder, depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case nil:
		return codec.AppendNil(dst), nil
	case bool:
		return codec.AppendBool(dst, v), nil
	case string:
		return codec.AppendString(dst, v), nil
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return codec.AppendInt(dst, i), nil
		}
		if u, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return codec.AppendUint(dst, u), nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, err
		}
		return codec.AppendFloat64(dst, f), nil
	case json.Delim:
		// Containers get a 32-bit header patched with the count at the end:
		// the count is not known up front.
		at := len(dst)
		if v == '{' {
			dst = codec.AppendMapHeader32(dst)
		} else {
			dst = codec.AppendArrayHeader32(dst)
		}
		n := 0
		for dec.More() {
			if v == '{' {
				key, err := dec.Token()
				if err != nil {
					return nil, err
				}
				dst = codec.AppendString(dst, key.(string))
			}
			if dst, err = appendJSONValue(dst, dec, depth+1); err != nil {
				return nil, err
			}
			n++
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		codec.PatchHeader32(dst, at, n)
		return dst, nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}
