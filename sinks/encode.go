package sinks

import (
	"fmt"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// ReasonEncodeError is the drop reason of events a sink could not encode.
const ReasonEncodeError = "encode_error"

// unencodable collects the events of one Write that a sink could not turn
// into JSON. The zero value is ready; it is owned by the Write.
type unencodable struct {
	// encs, when set, are the sink's encoders (what they learned of the
	// events before); nil encodes with codec.AppendJSON.
	encs   *encoders
	events []pipeline.Event
	err    error // the last failure
}

// appendJSON appends ev as JSON to dst. When ev cannot be encoded it leaves
// dst as it was, records ev and returns false.
func (u *unencodable) appendJSON(dst []byte, ev *pipeline.Event) ([]byte, bool) {
	var enc *codec.Encoder
	if u.encs != nil {
		enc = u.encs.of(ev.Source)
	}
	out, err := enc.AppendJSON(dst, ev.Data)
	if err != nil {
		u.events = append(u.events, *ev)
		u.err = fmt.Errorf("encode event seq %d of %q as JSON: %w", ev.Seq, ev.Source, err)
		return dst, false
	}
	return out, true
}

// loss reports the recorded events as lost by the sink of that kind and
// name, or returns nil when there are none.
func (u *unencodable) loss(kind, name string) error {
	if len(u.events) == 0 {
		return nil
	}
	return &pipeline.WriteLoss{Reason: ReasonEncodeError, Events: u.events,
		Err: fmt.Errorf("%s sink %q: %d events not encoded: %w", kind, name, len(u.events), u.err)}
}

// encoders are a sink's JSON encoders, one per source. A codec.Encoder
// learns the shape of the events it transcodes (their keys, which values
// stay the same) and is fastest on a stream of one shape: a sink fed by
// several sources gets their events interleaved, which would make a
// single encoder relearn at every turn. The zero value is ready; it is
// owned by its sink and used under the sink's lock.
type encoders struct {
	last     string // the source of the last event, and its encoder
	lastEnc  *codec.Encoder
	bySource map[string]*codec.Encoder
	shared   codec.Encoder // for sources past maxEncoders
}

// maxEncoders bounds a sink's encoders (a few tens of KB each at most)
// whatever sources the events name.
const maxEncoders = 32

// of returns the encoder of the events of source.
func (e *encoders) of(source string) *codec.Encoder {
	if e.lastEnc != nil && source == e.last {
		return e.lastEnc
	}
	enc, ok := e.bySource[source]
	if !ok {
		enc = &e.shared
		if len(e.bySource) < maxEncoders {
			if e.bySource == nil {
				e.bySource = map[string]*codec.Encoder{}
			}
			enc = new(codec.Encoder)
			e.bySource[source] = enc
		}
	}
	e.last, e.lastEnc = source, enc
	return enc
}
