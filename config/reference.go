package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Kinds of components a Reference can name.
const (
	KindSource = "source"
	KindSink   = "sink"
	KindStage  = "stage"
)

// referenceKinds lists every kind a reference may start with, so that a
// misplaced reference (a sink in sources) is reported as such rather than as
// an unknown word.
var referenceKinds = []string{KindSource, KindStage, KindSink}

// Reference names a component block by kind, type and name, as written in a
// pipeline: source.gadget.exec.
type Reference struct {
	Kind, Type, Name string
	// Range covers the reference expression in the pipeline.
	Range hcl.Range
}

// String returns the reference as written in a config: "source.gadget.exec".
func (r Reference) String() string {
	return r.Kind + "." + r.Type + "." + r.Name
}

// ParseReference parses the text form of a reference ("sink.stdout.console"),
// as command-line flags and the control API carry it.
func ParseReference(s string) (Reference, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Reference{}, fmt.Errorf("parse reference %q: want KIND.TYPE.NAME, such as source.gadget.exec", s)
	}
	if !contains(referenceKinds, parts[0]) {
		return Reference{}, fmt.Errorf("parse reference %q: unknown kind %q, want one of %s", s, parts[0], quotedList(referenceKinds))
	}
	for _, p := range parts[1:] {
		if !hclsyntax.ValidIdentifier(p) {
			return Reference{}, fmt.Errorf("parse reference %q: %q is not a valid name", s, p)
		}
	}
	return Reference{Kind: parts[0], Type: parts[1], Name: parts[2]}, nil
}

// decodeReferences decodes a list attribute of references to components of
// one kind, such as a pipeline's sources. References are bare traversals,
// never evaluated: the names they hold are looked up by the resolver.
func decodeReferences(attr *hcl.Attribute, kind string) ([]Reference, hcl.Diagnostics) {
	exprs, listDiags := hcl.ExprList(attr.Expr)
	if listDiags.HasErrors() {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s list", attr.Name),
			Detail: fmt.Sprintf("The %s attribute takes a list of %s references, such as [%s].",
				attr.Name, kind, exampleRef(kind)),
			Subject: attr.Expr.Range().Ptr(),
		}}
	}
	var refs []Reference
	var diags hcl.Diagnostics
	seen := map[string]hcl.Range{}
	for _, e := range exprs {
		ref, d := decodeReference(e, attr.Name, kind)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if prev, ok := seen[ref.String()]; ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate reference",
				Detail: fmt.Sprintf("%s is already listed at %s; each %s may appear once in %s.",
					ref, prev, kind, attr.Name),
				Subject: ref.Range.Ptr(),
			})
			continue
		}
		seen[ref.String()] = ref.Range
		refs = append(refs, ref)
	}
	return refs, diags
}

func decodeReference(e hcl.Expression, attrName, kind string) (Reference, hcl.Diagnostics) {
	rng := e.Range()
	invalid := func(summary, detail string) (Reference, hcl.Diagnostics) {
		return Reference{}, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  summary,
			Detail:   detail,
			Subject:  rng.Ptr(),
		}}
	}
	form := fmt.Sprintf("A %s reference has the form %s.TYPE.NAME, such as %s.", kind, kind, exampleRef(kind))

	tr, trDiags := hcl.AbsTraversalForExpr(e)
	if trDiags.HasErrors() {
		// A quoted reference is the likeliest mistake; name it precisely.
		if v, d := e.Value(nil); !d.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
			s := v.AsString()
			if r, err := ParseReference(s); err == nil {
				return invalid("Reference given as a string",
					fmt.Sprintf("References are bare names, not strings: write %s without quotes.", r))
			}
			return invalid("Invalid reference",
				fmt.Sprintf("%q is a string, not a reference. %s", s, form))
		}
		return invalid("Invalid reference", form)
	}

	var parts []string
	parts = append(parts, tr.RootName())
	for _, step := range tr[1:] {
		a, ok := step.(hcl.TraverseAttr)
		if !ok {
			return invalid("Invalid reference", form)
		}
		parts = append(parts, a.Name)
	}
	if parts[0] != kind {
		if contains(referenceKinds, parts[0]) {
			return invalid("Wrong kind of reference",
				fmt.Sprintf("%s refers to a %s, but %s takes %s references. %s",
					strings.Join(parts, "."), parts[0], attrName, kind, form))
		}
		return invalid("Invalid reference", form)
	}
	if len(parts) != 3 {
		return invalid("Invalid reference", form)
	}
	return Reference{Kind: kind, Type: parts[1], Name: parts[2], Range: rng}, nil
}

func exampleRef(kind string) string {
	switch kind {
	case KindSource:
		return "source.gadget.exec"
	case KindSink:
		return "sink.stdout.console"
	case KindStage:
		return "stage.wasm.no_shells"
	}
	return kind + ".TYPE.NAME"
}
