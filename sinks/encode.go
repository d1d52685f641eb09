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
	// enc, when set, is the sink's encoder (its cache of the keys of the
	// events before); nil encodes with codec.AppendJSON.
	enc    *codec.Encoder
	events []pipeline.Event
	err    error // the last failure
}

// appendJSON appends ev as JSON to dst. When ev cannot be encoded it leaves
// dst as it was, records ev and returns false.
func (u *unencodable) appendJSON(dst []byte, ev *pipeline.Event) ([]byte, bool) {
	out, err := u.enc.AppendJSON(dst, ev.Data)
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
