package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// decodeParams decodes a params object whose values are scalars. A literal
// object keeps a range per key and per value, which the agent needs to point
// at an unknown or ill-typed param; any other object-valued expression (a
// function result) is accepted with the whole expression as every range.
func decodeParams(attr *hcl.Attribute, ectx *hcl.EvalContext) ([]Param, hcl.Diagnostics) {
	pairs, mapDiags := hcl.ExprMap(attr.Expr)
	if mapDiags.HasErrors() {
		return decodeParamsValue(attr, ectx)
	}
	var params []Param
	var diags hcl.Diagnostics
	seen := map[string]hcl.Range{}
	for _, kv := range pairs {
		kval, d := kv.Key.Value(ectx)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		name, err := convert.Convert(kval, cty.String)
		if err != nil || name.IsNull() || !name.IsKnown() {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid param name",
				Detail:   "A param name must be a string.",
				Subject:  kv.Key.Range().Ptr(),
			})
			continue
		}
		p := Param{Name: name.AsString(), NameRange: kv.Key.Range(), Range: kv.Value.Range()}
		if prev, ok := seen[p.Name]; ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate param",
				Detail:   fmt.Sprintf("The param %q is already set at %s.", p.Name, prev),
				Subject:  p.NameRange.Ptr(),
			})
			continue
		}
		seen[p.Name] = p.NameRange
		v, d := kv.Value.Value(ectx)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		s, d := paramScalar(p.Name, v, p.Range)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		p.Value = s
		params = append(params, p)
	}
	return params, diags
}

func decodeParamsValue(attr *hcl.Attribute, ectx *hcl.EvalContext) ([]Param, hcl.Diagnostics) {
	rng := attr.Expr.Range()
	v, diags := attr.Expr.Value(ectx)
	if diags.HasErrors() {
		return nil, diags
	}
	if v.IsNull() {
		return nil, diags
	}
	if !(v.Type().IsObjectType() || v.Type().IsMapType()) || !v.IsKnown() {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid params",
			Detail:   fmt.Sprintf("params must be an object, such as { ignore_failed = true }; got %s.", v.Type().FriendlyName()),
			Subject:  rng.Ptr(),
		})
	}
	var params []Param
	// Objects and maps iterate in key order, so the result is deterministic.
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		s, d := paramScalar(k.AsString(), ev, rng)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		params = append(params, Param{Name: k.AsString(), Value: s, Range: rng, NameRange: rng})
	}
	return params, diags
}

// paramScalar renders a param value as text. Only scalars are accepted:
// gadget params are C globals (const volatile), which hold one value each.
func paramScalar(name string, v cty.Value, rng hcl.Range) (string, hcl.Diagnostics) {
	bad := func(detail string) (string, hcl.Diagnostics) {
		return "", hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid param value",
			Detail:   detail,
			Subject:  rng.Ptr(),
		}}
	}
	switch {
	case !v.IsWhollyKnown():
		return bad(fmt.Sprintf("The value of param %q must be known when the config is loaded.", name))
	case v.IsNull():
		return bad(fmt.Sprintf("The value of param %q is null; give a string, number or bool, or leave the param out.", name))
	case !v.Type().IsPrimitiveType():
		return bad(fmt.Sprintf("The value of param %q is %s; param values must be a string, number or bool.", name, v.Type().FriendlyName()))
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil {
		return bad(fmt.Sprintf("The value of param %q cannot be rendered as text: %s.", name, err))
	}
	return s.AsString(), nil
}
