package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

func init() { registerSink("nats", decodeNATSSink) }

// NATSSink is the body of a `sink "nats"` block.
type NATSSink struct {
	URL          string
	Subject      string
	SubjectRange hcl.Range
	Encoding     string // msgpack | json

	NATSAuth

	JetStream *NATSJetStream // nil: core NATS (at most once)

	// Spool absorbs outages on disk under <data_dir>/spool/<sink name>.
	Spool NATSSpool

	// Batch, when set, packs several events into one message.
	Batch *NATSBatch
}

// NATSBatch is the `batch {}` block of a NATS sink.
type NATSBatch struct {
	MaxEvents int
	MaxBytes  int64
	MaxDelay  time.Duration
}

// Defaults of a NATS sink's batch block.
const (
	DefaultNATSBatchMaxEvents = 100
	DefaultNATSBatchMaxBytes  = 512 << 10
	DefaultNATSBatchMaxDelay  = 50 * time.Millisecond
	// DefaultNATSSpoolMaxBytes bounds a spool without max_bytes.
	DefaultNATSSpoolMaxBytes = 1 << 30
)

// NATSSpool is the `spool {}` block of a NATS sink.
type NATSSpool struct {
	Enabled  bool
	MaxBytes int64
	WhenFull string // drop_newest | drop_oldest
}

// NATSJetStream is the `jetstream {}` block of a NATS sink.
type NATSJetStream struct {
	Stream          string
	Create          bool
	Subjects        []string
	MaxAge          time.Duration
	DuplicateWindow time.Duration // 0: the sink's default (2m)
	MaxPending      int
	AckTimeout      time.Duration
}

// Defaults of the NATS sink.
const (
	DefaultNATSURL     = "nats://127.0.0.1:4222"
	DefaultNATSSubject = "sluice.events.{host}.{source}"
)

var natsEncodings = []string{"msgpack", "json"}

var natsSinkSchema = &hcl.BodySchema{
	Attributes: append([]hcl.AttributeSchema{{Name: "url"}, {Name: "subject"}, {Name: "encoding"}}, natsAuthAttrs...),
	Blocks:     []hcl.BlockHeaderSchema{{Type: "tls"}, {Type: "jetstream"}, {Type: "spool"}, {Type: "batch"}},
}

var natsBatchSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "max_events"}, {Name: "max_bytes"}, {Name: "max_delay"}}}

var natsSpoolSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "enabled"}, {Name: "max_bytes"}, {Name: "when_full"}}}

var spoolWhenFull = []string{"drop_newest", "drop_oldest"}

var natsJetStreamSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "stream", Required: true}, {Name: "create"}, {Name: "subjects"}, {Name: "max_age"}, {Name: "duplicate_window"},
	{Name: "max_pending"}, {Name: "ack_timeout"},
}}

// decodeNATSSink decodes `sink "nats" NAME { ... }`.
func decodeNATSSink(body hcl.Body, ectx *hcl.EvalContext, sink *Sink) hcl.Diagnostics {
	out := &NATSSink{URL: DefaultNATSURL, Subject: DefaultNATSSubject, Encoding: "msgpack",
		Spool: NATSSpool{Enabled: true, MaxBytes: DefaultNATSSpoolMaxBytes, WhenFull: "drop_newest"}}
	sink.NATS = out
	content, diags := body.Content(natsSinkSchema)
	str := func(c *hcl.BodyContent, name string, dst *string) {
		if a := c.Attributes[name]; a != nil {
			var d hcl.Diagnostics
			*dst, _, d = evalNonEmptyOr(a, ectx, *dst)
			diags = append(diags, d...)
		}
	}
	str(content, "url", &out.URL)
	if a := content.Attributes["url"]; a != nil {
		if bad := addressDiag(a, CheckNATSURL(out.URL)); bad != nil {
			diags = append(diags, bad)
		}
	}
	str(content, "subject", &out.Subject)
	if a := content.Attributes["subject"]; a != nil {
		out.SubjectRange = a.Expr.Range()
	}
	diags = append(diags, decodeNATSAuth(content, ectx, &out.NATSAuth)...)
	if a := content.Attributes["encoding"]; a != nil {
		out.Encoding, diags = enumOrAppend(a, ectx, natsEncodings, out.Encoding, diags)
	}
	seen := map[string]hcl.Range{}
	var tlsRange hcl.Range
	for _, b := range content.Blocks {
		if first, dup := seen[b.Type]; dup {
			diags = append(diags, duplicate(b.Type+" block", "A "+b.Type+" block", first, b.DefRange,
				"A NATS sink has at most one "+b.Type+" block."))
			continue
		}
		seen[b.Type] = b.DefRange
		switch b.Type {
		case "batch":
			out.Batch = &NATSBatch{MaxEvents: DefaultNATSBatchMaxEvents, MaxBytes: DefaultNATSBatchMaxBytes, MaxDelay: DefaultNATSBatchMaxDelay}
			c, d := b.Body.Content(natsBatchSchema)
			diags = append(diags, d...)
			if a := c.Attributes["max_events"]; a != nil {
				n, ok, d := evalIntIn(a, ectx, natsBatchEventsBound)
				diags = append(diags, d...)
				if ok {
					out.Batch.MaxEvents = n
				}
			}
			if a := c.Attributes["max_bytes"]; a != nil {
				n, ok, d := evalSizeIn(a, ectx, natsBatchBytesBound)
				diags = append(diags, d...)
				if ok {
					out.Batch.MaxBytes = n
				}
			}
			if a := c.Attributes["max_delay"]; a != nil {
				out.Batch.MaxDelay, d = durationIn(a, ectx, out.Batch.MaxDelay, natsBatchDelayBound)
				diags = append(diags, d...)
			}
		case "tls":
			tlsRange = b.DefRange
			diags = append(diags, decodeNATSTLS(b, ectx, &out.NATSAuth)...)
		case "spool":
			c, d := b.Body.Content(natsSpoolSchema)
			diags = append(diags, d...)
			if a := c.Attributes["enabled"]; a != nil {
				v, ok, d := evalBool(a, ectx)
				diags = append(diags, d...)
				if ok {
					out.Spool.Enabled = v
				}
			}
			if a := c.Attributes["max_bytes"]; a != nil {
				n, ok, d := evalSizeIn(a, ectx, spoolBytesBound)
				diags = append(diags, d...)
				if ok {
					out.Spool.MaxBytes = n
				}
			}
			if a := c.Attributes["when_full"]; a != nil {
				out.Spool.WhenFull, diags = enumOrAppend(a, ectx, spoolWhenFull, out.Spool.WhenFull, diags)
			}
		case "jetstream":
			js := &NATSJetStream{}
			out.JetStream = js
			c, d := b.Body.Content(natsJetStreamSchema)
			diags = append(diags, d...)
			str(c, "stream", &js.Stream)
			if a := c.Attributes["create"]; a != nil {
				v, ok, d := evalBool(a, ectx)
				diags = append(diags, d...)
				if ok {
					js.Create = v
				}
			}
			if a := c.Attributes["subjects"]; a != nil {
				v, d := evalAs(a, ectx, cty.List(cty.String))
				diags = append(diags, d...)
				if !d.HasErrors() && v.IsKnown() && !v.IsNull() {
					for _, e := range v.AsValueSlice() {
						js.Subjects = append(js.Subjects, e.AsString())
					}
				}
			}
			if a := c.Attributes["max_age"]; a != nil {
				js.MaxAge, d = durationIn(a, ectx, js.MaxAge, streamAgeBound)
				diags = append(diags, d...)
			}
			if a := c.Attributes["duplicate_window"]; a != nil {
				js.DuplicateWindow, d = durationIn(a, ectx, js.DuplicateWindow, dedupWindowBound)
				diags = append(diags, d...)
			}
			if a := c.Attributes["ack_timeout"]; a != nil {
				js.AckTimeout, d = durationIn(a, ectx, js.AckTimeout, ackTimeoutBound)
				diags = append(diags, d...)
			}
			if a := c.Attributes["max_pending"]; a != nil {
				n, ok, d := evalIntIn(a, ectx, maxPendingBound)
				diags = append(diags, d...)
				if ok {
					js.MaxPending = n
				}
			}
		}
	}
	return append(diags, checkNATSAuth(content, &out.NATSAuth, tlsRange, "a NATS sink")...)
}

func enumOrAppend(a *hcl.Attribute, ectx *hcl.EvalContext, allowed []string, def string, diags hcl.Diagnostics) (string, hcl.Diagnostics) {
	v, d := enumOr(a, ectx, allowed, def)
	return v, append(diags, d...)
}
