package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

func init() { registerSource("wasm_bpf", decodeWasmBPFSource) }

// WasmBPFSource is the body of a `source "wasm_bpf"` block: a wasm-bpf
// application (eunomia-bpf's model: an eBPF application compiled to one
// Wasm module that loads, attaches and polls its eBPF objects through the
// wasm_bpf host interface), run as a source. Whether the module exists
// and is a wasm-bpf application is checked by the agent.
type WasmBPFSource struct {
	// Module is a path to a .wasm file (relative paths are taken from the
	// config file's directory) or an OCI reference (oci://...).
	Module      string
	ModuleRange hcl.Range
	// Args are the application's argv after its name.
	Args      []string
	ArgsRange hcl.Range
	// Emit is what becomes events: records (every record the guest polls,
	// decoded), stdout (every line it prints) or both.
	Emit      string
	EmitRange hcl.Range
	// EventType names the BTF struct of the records, for objects without
	// markers or typed maps (as a gadget source's event_type).
	EventType      string
	EventTypeRange hcl.Range
	// BufferSize is the ring buffer size, or the perf buffer size per CPU,
	// of the objects' outputs; 0 = the gadgets' defaults.
	BufferSize int64
	// MemoryLimit bounds the guest's memory, in bytes.
	MemoryLimit int64
	// StopGrace is how long a stopping guest may take to return.
	StopGrace time.Duration
	// Grants are what the guest may use beyond clocks, random numbers and
	// sleeping: an environment and directories. Its stdout and stderr
	// always go to the agent's log.
	Grants WasmGrants
}

// Defaults of the wasm_bpf source.
const (
	DefaultWasmBPFEmit        = "records"
	DefaultWasmBPFMemoryLimit = 256 << 20
	DefaultWasmBPFStopGrace   = time.Second
	maxWasmBPFArgs            = 256
)

var wasmBPFEmitValues = []string{DefaultWasmBPFEmit, "stdout", "both"}

var wasmBPFSourceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "module", Required: true},
		{Name: "args"},
		{Name: "emit"},
		{Name: "event_type"},
		{Name: "buffer_size"},
		{Name: "memory_limit"},
		{Name: "stop_grace"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "grants"}},
}

// decodeWasmBPFSource decodes `source "wasm_bpf" NAME { ... }`.
func decodeWasmBPFSource(body hcl.Body, ectx *hcl.EvalContext, src *Source) hcl.Diagnostics {
	w := &WasmBPFSource{Emit: DefaultWasmBPFEmit, MemoryLimit: DefaultWasmBPFMemoryLimit, StopGrace: DefaultWasmBPFStopGrace}
	src.WasmBPF = w
	content, diags := body.Content(wasmBPFSourceSchema)
	if a := content.Attributes["module"]; a != nil {
		w.ModuleRange = a.Expr.Range()
		var ds hcl.Diagnostics
		w.Module, _, ds = evalNonEmpty(a, ectx)
		diags = append(diags, ds...)
	}
	if a := content.Attributes["args"]; a != nil {
		w.ArgsRange = a.Expr.Range()
		v, ds := evalAs(a, ectx, cty.List(cty.String))
		diags = append(diags, ds...)
		if !ds.HasErrors() && !v.IsNull() {
			for it := v.ElementIterator(); it.Next(); {
				_, ev := it.Element()
				if ev.IsNull() {
					diags = append(diags, invalidValue(a, "An argument is null; give strings."))
					continue
				}
				w.Args = append(w.Args, ev.AsString())
			}
			if len(w.Args) > maxWasmBPFArgs {
				diags = append(diags, invalidValue(a, fmt.Sprintf("At most %d arguments; got %d.", maxWasmBPFArgs, len(w.Args))))
			}
		}
	}
	if a := content.Attributes["emit"]; a != nil {
		w.EmitRange = a.Expr.Range()
		s, ok, ds := evalEnum(a, ectx, wasmBPFEmitValues)
		diags = append(diags, ds...)
		if ok {
			w.Emit = s
		}
	}
	diags = append(diags, nonEmptyAttr(content, "event_type", ectx, &w.EventType, &w.EventTypeRange)...)
	if a := content.Attributes["buffer_size"]; a != nil {
		n, ok, ds := evalSize(a, ectx)
		diags = append(diags, ds...)
		if ok {
			w.BufferSize = n
		}
	}
	if a := content.Attributes["memory_limit"]; a != nil {
		n, ok, ds := evalSize(a, ectx)
		diags = append(diags, ds...)
		switch {
		case ok && (n < minWasmMemory || n > maxWasmMemory):
			diags = append(diags, invalidValue(a, fmt.Sprintf("memory_limit must be from 64KiB (one Wasm page) to 4GiB (all a wasm32 memory addresses); got %d bytes.", n)))
		case ok:
			w.MemoryLimit = n
		}
	}
	if a := content.Attributes["stop_grace"]; a != nil {
		var ds hcl.Diagnostics
		w.StopGrace, ds = durationOr(a, ectx, w.StopGrace)
		diags = append(diags, ds...)
	}
	var grants *hcl.Block
	for _, b := range content.Blocks {
		if grants != nil {
			diags = append(diags, duplicate("grants block", "A grants block", grants.DefRange, b.DefRange, "A source has at most one grants block."))
			continue
		}
		grants = b
		// An application's output always goes to the log (and to events
		// with emit); only a stage's output is a grant.
		part, _, _ := b.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "stdout"}, {Name: "stderr"}}})
		for _, name := range []string{"stdout", "stderr"} {
			if a := part.Attributes[name]; a != nil {
				diags = append(diags, invalidValue(a, fmt.Sprintf("A wasm-bpf application's %s always goes to the agent's log; emit = \"stdout\" or \"both\" makes its lines events too.", name)))
			}
		}
		diags = append(diags, decodeWasmGrants(b, ectx, &w.Grants)...)
	}
	return diags
}
