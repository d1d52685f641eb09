package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// FieldHintKinds are the values of a field hint's "as"; sources/decode
// implements them (a test in agent keeps the lists equal).
var FieldHintKinds = []string{"strings", "ip"}

// fieldHintKeys are the keys a field hint object takes.
var fieldHintKeys = []string{"as", "count", "size", "family", "tag", "cases", "rename", "member"}

// decodePlainOptions decodes the attributes a plain libbpf object needs:
// event_type_file, programs, skip_programs and the fields block.
func decodePlainOptions(content *hcl.BodyContent, ectx *hcl.EvalContext, src *Source) hcl.Diagnostics {
	var diags hcl.Diagnostics
	diags = append(diags, nonEmptyAttr(content, "event_type_file", ectx, &src.EventTypeFile, &src.EventTypeFileRange)...)
	if a := content.Attributes["programs"]; a != nil {
		l, r, d := evalStringList(a, ectx)
		diags = append(diags, d...)
		src.Programs, src.ProgramsRanges = l, r
		diags = append(diags, duplicateElements(a, l, r)...)
	}
	if a := content.Attributes["skip_programs"]; a != nil {
		l, r, d := evalStringList(a, ectx)
		diags = append(diags, d...)
		src.SkipPrograms, src.SkipProgramsRanges = l, r
		diags = append(diags, duplicateElements(a, l, r)...)
	}
	for i, b := range content.Blocks.OfType("fields") {
		if i > 0 {
			diags = append(diags, duplicate("fields block", "A fields block", content.Blocks.OfType("fields")[0].DefRange, b.DefRange, "A source has one fields block: put every hint in it."))
			continue
		}
		hints, d := decodeFieldHints(b.Body, ectx)
		diags = append(diags, d...)
		src.Fields = hints
	}
	return diags
}

func duplicateElements(a *hcl.Attribute, l []string, ranges []hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]bool{}
	for i, s := range l {
		if seen[s] {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate program",
				Detail: fmt.Sprintf("%s lists %q twice.", a.Name, s), Subject: ranges[i].Ptr()})
		}
		seen[s] = true
	}
	return diags
}

// decodeFieldHints decodes the attributes of a fields block, each an
// object of hint keys.
func decodeFieldHints(body hcl.Body, ectx *hcl.EvalContext) ([]FieldHint, hcl.Diagnostics) {
	attrs, diags := body.JustAttributes()
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	// In file order, for diagnostics and for the hints' order.
	sort.Slice(names, func(i, j int) bool {
		return attrs[names[i]].Range.Start.Byte < attrs[names[j]].Range.Start.Byte
	})
	var out []FieldHint
	for _, n := range names {
		h, d := decodeFieldHint(attrs[n], ectx)
		diags = append(diags, d...)
		if !d.HasErrors() {
			out = append(out, h)
		}
	}
	return out, diags
}

func decodeFieldHint(a *hcl.Attribute, ectx *hcl.EvalContext) (FieldHint, hcl.Diagnostics) {
	h := FieldHint{Name: a.Name, Range: a.Range, NameRange: a.NameRange}
	v, diags := a.Expr.Value(ectx)
	if diags.HasErrors() {
		return h, diags
	}
	bad := func(rng hcl.Range, format string, args ...any) (FieldHint, hcl.Diagnostics) {
		return h, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid field hint",
			Detail: fmt.Sprintf(format, args...), Subject: rng.Ptr()})
	}
	example := `such as { as = "strings", count = "args_count" }, { as = "ip", family = "af" } or { tag = "kind", cases = { 1 = "exec" } }`
	if v.IsNull() || !v.IsWhollyKnown() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		return bad(a.Expr.Range(), "The hint for %q must be an object, %s.", a.Name, example)
	}
	// Per-key ranges when the hint is a literal object.
	keyRange := map[string]hcl.Range{}
	if pairs, d := hcl.ExprMap(a.Expr); !d.HasErrors() {
		for _, kv := range pairs {
			if k, d := kv.Key.Value(ectx); !d.HasErrors() && k.Type() == cty.String && k.IsKnown() {
				keyRange[k.AsString()] = kv.Value.Range()
			}
		}
	}
	at := func(k string) hcl.Range {
		if r, ok := keyRange[k]; ok {
			return r
		}
		return a.Expr.Range()
	}
	str := func(k string, ev cty.Value) (string, bool) {
		sv, err := convert.Convert(ev, cty.String)
		if err != nil || sv.IsNull() || sv.AsString() == "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid field hint",
				Detail: fmt.Sprintf("%q in the hint for %q must be a non-empty string.", k, a.Name), Subject: at(k).Ptr()})
			return "", false
		}
		return sv.AsString(), true
	}
	for it := v.ElementIterator(); it.Next(); {
		kv, ev := it.Element()
		k := kv.AsString()
		switch k {
		case "cases":
			if ev.IsNull() || !(ev.Type().IsObjectType() || ev.Type().IsMapType()) {
				return bad(at(k), "cases in the hint for %q must be an object mapping tag values to alternatives, such as { 1 = \"exec\", EXIT = \"exit\" }.", a.Name)
			}
			h.Cases = map[string]string{}
			for ci := ev.ElementIterator(); ci.Next(); {
				ck, cv := ci.Element()
				if s, ok := str("cases", cv); ok {
					h.Cases[ck.AsString()] = s
				}
			}
			continue
		case "as", "count", "size", "family", "tag", "rename", "member":
		default:
			return bad(at(k), "The hint for %q has an unknown key %q; hint keys are %s.", a.Name, k, strings.Join(fieldHintKeys, ", "))
		}
		s, ok := str(k, ev)
		if !ok {
			continue
		}
		switch k {
		case "as":
			h.As = s
		case "count":
			h.Count = s
		case "size":
			h.Size = s
		case "family":
			h.Family = s
		case "tag":
			h.Tag = s
		case "rename":
			h.Rename = s
		case "member":
			h.Member = s
		}
	}
	if diags.HasErrors() {
		return h, diags
	}
	return h, append(diags, h.check(at)...)
}

// check enforces which keys go together.
func (h *FieldHint) check(at func(string) hcl.Range) hcl.Diagnostics {
	if key, detail := h.problem(); detail != "" {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid field hint", Detail: detail, Subject: at(key).Ptr()}}
	}
	return nil
}

// Check says what is wrong with a hint built outside a config file (a
// command-line flag): the keys that do not go together, nil when none.
func (h FieldHint) Check() error {
	if _, detail := h.problem(); detail != "" {
		return errors.New(detail)
	}
	return nil
}

// problem returns the key at fault and what is wrong, "" when nothing is.
func (h *FieldHint) problem() (string, string) {
	if h.As != "" && !contains(FieldHintKinds, h.As) {
		return "as", fmt.Sprintf("as = %q in the hint for %q: want one of %s.", h.As, h.Name, strings.Join(FieldHintKinds, ", "))
	}
	if (h.Count != "" || h.Size != "") && h.As != "strings" {
		k := "count"
		if h.Count == "" {
			k = "size"
		}
		return k, fmt.Sprintf("%s in the hint for %q goes with as = \"strings\".", k, h.Name)
	}
	if h.Family != "" && h.As != "ip" {
		return "family", fmt.Sprintf("family in the hint for %q goes with as = \"ip\".", h.Name)
	}
	if (h.Tag == "") != (len(h.Cases) == 0) {
		k := "tag"
		if h.Tag == "" {
			k = "cases"
		}
		return k, fmt.Sprintf("The hint for %q needs both tag (the member whose value says which alternative the union holds) and cases (its values and their alternatives).", h.Name)
	}
	if h.Tag != "" && h.As != "" {
		return "as", fmt.Sprintf("The hint for %q sets both a tag and as; a tag chooses among a union's alternatives, as renders one member.", h.Name)
	}
	if h.As == "" && h.Tag == "" && h.Rename == "" {
		return "as", fmt.Sprintf("The hint for %q says nothing: give as, tag and cases, or rename.", h.Name)
	}
	return "", ""
}
