package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

func init() { registerSource("gadget", decodeGadgetSource) }

var gadgetSourceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "gadget", Required: true},
		{Name: "params"},
		{Name: "event_type"},
		{Name: "map"},
		{Name: "buffer_size"},
		{Name: "wasm"},
		{Name: "interval"},
		{Name: "runs"},
		{Name: "ifaces"},
		{Name: "netns"},
		{Name: "sample_frequency"},
		{Name: "containers_only"},
		{Name: "event_type_file"},
		{Name: "programs"},
		{Name: "skip_programs"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "filter"},
		{Type: "fields"},
	},
}

// decodeGadgetSource decodes `source "gadget" NAME { ... }`. Whether the
// gadget exists and takes the given params is checked by the agent, which
// knows the gadgets; this keeps the ranges it needs to report on.
func decodeGadgetSource(body hcl.Body, ectx *hcl.EvalContext, src *Source) hcl.Diagnostics {
	content, diags := body.Content(gadgetSourceSchema)
	diags = append(diags, nonEmptyAttr(content, "gadget", ectx, &src.Gadget, &src.GadgetRange)...)
	if a := content.Attributes["params"]; a != nil {
		p, d := decodeParams(a, ectx)
		diags = append(diags, d...)
		src.Params = p
	}
	diags = append(diags, nonEmptyAttr(content, "event_type", ectx, &src.EventType, &src.EventTypeRange)...)
	diags = append(diags, nonEmptyAttr(content, "map", ectx, &src.Map, &src.MapRange)...)
	diags = append(diags, nonEmptyAttr(content, "wasm", ectx, &src.Wasm, &src.WasmRange)...)
	if a := content.Attributes["containers_only"]; a != nil {
		src.ContainersOnlyRange = a.Expr.Range()
		v, ok, d := evalBool(a, ectx)
		diags = append(diags, d...)
		if ok {
			src.ContainersOnly = v
		}
	}
	for _, b := range content.Blocks.OfType("filter") {
		if src.Filter != nil {
			diags = append(diags, duplicate("filter block", "A filter block", src.Filter.Range, b.DefRange, "A source has at most one filter block."))
			continue
		}
		f, d := decodeSourceFilter(b, ectx)
		diags = append(diags, d...)
		src.Filter = f
	}
	if a := content.Attributes["interval"]; a != nil {
		src.IntervalRange = a.Expr.Range()
		d, ds := durationIn(a, ectx, time.Duration(0), intervalBound)
		diags = append(diags, ds...)
		if d != 0 {
			src.Interval = d
		}
	}
	if a := content.Attributes["runs"]; a != nil {
		n, ok, d := evalIntIn(a, ectx, runsBound)
		diags = append(diags, d...)
		if ok {
			src.Runs = n
		}
	}
	if a := content.Attributes["ifaces"]; a != nil {
		src.IfacesRange = a.Expr.Range()
		l, _, d := evalStringList(a, ectx)
		diags = append(diags, d...)
		src.Ifaces = l
	}
	if a := content.Attributes["netns"]; a != nil {
		src.NetNSRange = a.Expr.Range()
		l, _, d := evalStringList(a, ectx)
		diags = append(diags, d...)
		src.NetNS = l
	}
	if a := content.Attributes["sample_frequency"]; a != nil {
		src.SampleFrequencyRange = a.Expr.Range()
		n, ok, d := evalIntIn(a, ectx, sampleFrequencyBound)
		diags = append(diags, d...)
		if ok {
			src.SampleFrequency = n
		}
	}
	diags = append(diags, decodePlainOptions(content, ectx, src)...)
	if a := content.Attributes["buffer_size"]; a != nil {
		src.BufferSizeRange = a.Expr.Range()
		n, ok, d := evalSizeIn(a, ectx, bufferSizeBound)
		diags = append(diags, d...)
		if ok {
			src.BufferSize = n
		}
	}
	return diags
}
