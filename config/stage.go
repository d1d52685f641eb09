package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/pipeline"
)

// Stage is a `stage "<type>" "<name>"` block: a step that every batch of a
// pipeline listing it passes through, in the order the pipeline lists its
// stages. The type-specific pointer matching Type is set.
type Stage struct {
	Type, Name string
	DefRange   hcl.Range
	// Ref is the reference a pipeline uses for this stage: "stage.wasm.no_shells".
	Ref string

	// OnError is what a pipeline does with the batch of a failed stage
	// call: pass (on unchanged), drop, or dead_letter (to DeadLetter).
	OnError      string
	OnErrorRange hcl.Range
	// DeadLetter names the sink failed batches go to; set exactly when
	// OnError is dead_letter.
	DeadLetter *Reference

	Wasm *WasmStage // Type == "wasm"
}

// Stage returns the stage that ref names, or nil when there is none.
// It is safe for concurrent use as long as the File is not modified.
func (f *File) Stage(ref Reference) *Stage {
	if ref.Kind != KindStage {
		return nil
	}
	for _, s := range f.Stages {
		if s.Type == ref.Type && s.Name == ref.Name {
			return s
		}
	}
	return nil
}

// Values and defaults of the attributes every stage type has.
var onErrorValues = pipeline.ErrorActionNames()

// DefaultOnError is the on_error of a stage that does not set it.
const DefaultOnError = "pass"

// A stageDecoder decodes the type-specific part of a `stage "<type>"
// "<name>"` block body (the common attributes are already taken out) and
// sets the type's pointer field on st.
type stageDecoder func(body hcl.Body, ectx *hcl.EvalContext, st *Stage) hcl.Diagnostics

// stageTypes is filled by init functions in the component files
// (wasmstage.go) and only read afterwards.
var stageTypes = map[string]stageDecoder{}

func registerStage(typ string, dec stageDecoder) {
	if _, dup := stageTypes[typ]; dup {
		panic(fmt.Sprintf("config: stage type %q registered twice", typ))
	}
	stageTypes[typ] = dec
}

// StageTypes returns the registered stage types, sorted.
func StageTypes() []string { return sortedKeys(stageTypes) }

// stageCommonSchema holds the attributes of every stage type; the rest of
// the body goes to the type's decoder.
var stageCommonSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "on_error"},
		{Name: "dead_letter"},
	},
}

func (d *decoder) stage(b *hcl.Block) (*Stage, hcl.Diagnostics) {
	dec, ref, ok, diags := header(d, KindStage, b, stageTypes)
	if !ok {
		return nil, diags
	}
	st := &Stage{Type: b.Labels[0], Name: b.Labels[1], DefRange: b.DefRange, Ref: ref, OnError: DefaultOnError}
	content, rest, ds := b.Body.PartialContent(stageCommonSchema)
	diags = append(diags, ds...)
	onError := content.Attributes["on_error"]
	if onError != nil {
		st.OnErrorRange = onError.Expr.Range()
		var ds hcl.Diagnostics
		st.OnError, ds = enumOr(onError, d.ectx, onErrorValues, st.OnError)
		diags = append(diags, ds...)
	}
	if a := content.Attributes["dead_letter"]; a != nil {
		r, ds := decodeReference(a.Expr, "dead_letter", KindSink)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			st.DeadLetter = &r
		}
	}
	switch {
	case st.OnError == "dead_letter" && st.DeadLetter == nil && !diags.HasErrors():
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing dead-letter sink",
			Detail:   `on_error = "dead_letter" sends the batches of failed calls to a sink; name it with dead_letter = sink.TYPE.NAME.`,
			Subject:  onError.Expr.Range().Ptr(),
		})
	case st.OnError != "dead_letter" && st.DeadLetter != nil:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Dead-letter sink without dead_letter policy",
			Detail: fmt.Sprintf(`dead_letter is only used with on_error = "dead_letter", and on_error is %q; set it, or remove dead_letter.`,
				st.OnError),
			Subject: st.DeadLetter.Range.Ptr(),
		})
	}
	diags = append(diags, dec(rest, d.ectx, st)...)
	return st, diags
}
