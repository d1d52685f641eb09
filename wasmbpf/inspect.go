package wasmbpf

import (
	"fmt"
	"slices"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/sources/decode"
)

// Inspection is what a wasm-bpf module shows without running: the eBPF
// objects it carries in its data (as libbpf-bootstrap skeletons embed
// them) and the events their outputs will make. The guest decides at run
// time what it loads, so this is a forecast, used for the schemas of the
// sinks (a table's columns) and for `sluice config validate`; the events
// follow the objects the guest actually loads.
type Inspection struct {
	Objects []InspectedObject
	// Lines is the schema of the line events, when the source emits lines.
	Lines *pipeline.Schema
}

// InspectedObject is one embedded eBPF object.
type InspectedObject struct {
	Programs []string
	Outputs  []InspectedOutput
	Err      error // the object does not parse
}

// InspectedOutput is one ring buffer or perf event array of an object.
type InspectedOutput struct {
	Map     string
	Schema  *pipeline.Schema // the events its records make; nil when Err
	FoundBy string           // how the event type was found: marker, hint, map value, record size
	Err     error            // why its records cannot be decoded
}

// Inspect reads cfg.Module's embedded objects as the host will parse them
// at load (cfg's App, Source, Host and EventType apply). It fails only for
// a module that is not WebAssembly.
func Inspect(cfg Config) (*Inspection, error) {
	info, err := readBinary(cfg.Module)
	if err != nil {
		return nil, err
	}
	app := cfg.App
	if app == "" {
		app = cfg.Source
	}
	in := &Inspection{}
	if cfg.Emit.lines() {
		in.Lines = lineSchema(app)
	}
	for _, elf := range embeddedObjects(info.Data) {
		var o InspectedObject
		spec, undecodable, err := sources.ParseObject(app, elf, sources.ParseOptions{EventType: cfg.EventType})
		if err != nil {
			o.Err = err
			in.Objects = append(in.Objects, o)
			continue
		}
		o.Programs = programNames(spec)
		for _, st := range spec.Streams {
			out := InspectedOutput{Map: st.Map, FoundBy: string(st.FoundBy)}
			plan, err := decode.Compile(st.EventType, decode.Options{Gadget: app, Source: cfg.Source, Host: cfg.Host})
			if err != nil {
				out.Err = err
			} else {
				out.Schema = plan.Schema()
			}
			o.Outputs = append(o.Outputs, out)
		}
		for m, err := range undecodable {
			o.Outputs = append(o.Outputs, InspectedOutput{Map: m, Err: err})
		}
		slices.SortFunc(o.Outputs, func(a, b InspectedOutput) int {
			switch {
			case a.Map < b.Map:
				return -1
			case a.Map > b.Map:
				return 1
			}
			return 0
		})
		in.Objects = append(in.Objects, o)
	}
	return in, nil
}

// Schemas are the schemas of the events the source will make: the
// decodable outputs' when it emits records, the lines' when it emits lines.
func (in *Inspection) Schemas(emit Emit) []*pipeline.Schema {
	var out []*pipeline.Schema
	if emit.records() {
		for _, o := range in.Objects {
			for _, op := range o.Outputs {
				if op.Schema != nil {
					out = append(out, op.Schema)
				}
			}
		}
	}
	if in.Lines != nil {
		out = append(out, in.Lines)
	}
	return out
}

// Warnings say what a source emitting records will not make events of.
func (in *Inspection) Warnings(emit Emit) []string {
	if !emit.records() {
		return nil
	}
	var out []string
	for _, o := range in.Objects {
		if o.Err != nil {
			out = append(out, fmt.Sprintf("an embedded eBPF object does not parse: %v", o.Err))
			continue
		}
		for _, op := range o.Outputs {
			if op.Err != nil {
				out = append(out, fmt.Sprintf("the records of map %q go to the application but will not become events: %v", op.Map, op.Err))
			}
		}
	}
	return out
}
