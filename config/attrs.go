package config

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// The helpers below decode one attribute each. They return ok=false when the
// attribute is null (treated as absent, so the default applies) or invalid
// (a diagnostic says why); callers keep their default in both cases.

// evalAs evaluates attr and converts it to ty, reporting a type mismatch in
// the words HCL's gohcl uses.
func evalAs(attr *hcl.Attribute, ectx *hcl.EvalContext, ty cty.Type) (cty.Value, hcl.Diagnostics) {
	v, diags := attr.Expr.Value(ectx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if v.IsNull() {
		return v, diags
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NilVal, append(diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Incorrect attribute value type",
			Detail:      fmt.Sprintf("Inappropriate value for attribute %q: %s.", attr.Name, err),
			Subject:     attr.Expr.Range().Ptr(),
			Expression:  attr.Expr,
			EvalContext: ectx,
		})
	}
	// No expression can be unknown today (there are no variables), but
	// AsString panics on an unknown value and a future function might
	// return one: refuse it here rather than panic on a user's config.
	if !cv.IsWhollyKnown() {
		return cty.NilVal, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unknown value",
			Detail:   fmt.Sprintf("The value of %q must be known when the config is loaded.", attr.Name),
			Subject:  attr.Expr.Range().Ptr(),
		})
	}
	return cv, diags
}

func evalString(attr *hcl.Attribute, ectx *hcl.EvalContext) (string, bool, hcl.Diagnostics) {
	v, diags := evalAs(attr, ectx, cty.String)
	if diags.HasErrors() || v.IsNull() {
		return "", false, diags
	}
	return v.AsString(), true, diags
}

func evalBool(attr *hcl.Attribute, ectx *hcl.EvalContext) (bool, bool, hcl.Diagnostics) {
	v, diags := evalAs(attr, ectx, cty.Bool)
	if diags.HasErrors() || v.IsNull() {
		return false, false, diags
	}
	return v.True(), true, diags
}

// evalNonEmpty is evalString for attributes where "" cannot mean anything.
func evalNonEmpty(attr *hcl.Attribute, ectx *hcl.EvalContext) (string, bool, hcl.Diagnostics) {
	s, ok, diags := evalString(attr, ectx)
	if ok && s == "" {
		return "", false, append(diags, invalidValue(attr, fmt.Sprintf("%s must not be empty.", attr.Name)))
	}
	return s, ok, diags
}

func evalEnum(attr *hcl.Attribute, ectx *hcl.EvalContext, allowed []string) (string, bool, hcl.Diagnostics) {
	s, ok, diags := evalString(attr, ectx)
	if !ok {
		return "", false, diags
	}
	if !contains(allowed, s) {
		return "", false, append(diags, invalidValue(attr,
			fmt.Sprintf("%q is not a valid %s; use %s.%s", s, attr.Name, quotedList(allowed), didYouMean(s, allowed))))
	}
	return s, true, diags
}

// evalPositiveInt decodes a whole number greater than zero that fits an int.
func evalPositiveInt(attr *hcl.Attribute, ectx *hcl.EvalContext) (int, bool, hcl.Diagnostics) {
	v, diags := evalAs(attr, ectx, cty.Number)
	if diags.HasErrors() || v.IsNull() {
		return 0, false, diags
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return 0, false, append(diags, invalidValue(attr, fmt.Sprintf("%s must be a whole number, not %s.", attr.Name, bf.Text('f', -1))))
	}
	n, acc := bf.Int64()
	if acc != 0 || n > math.MaxInt {
		return 0, false, append(diags, invalidValue(attr, fmt.Sprintf("%s is too large.", attr.Name)))
	}
	if n <= 0 {
		return 0, false, append(diags, notPositive(attr, fmt.Sprint(n)))
	}
	return int(n), true, diags
}

// evalSize decodes a positive byte size, written as a string with a unit or
// as a plain number of bytes.
func evalSize(attr *hcl.Attribute, ectx *hcl.EvalContext) (int64, bool, hcl.Diagnostics) {
	s, ok, diags := evalString(attr, ectx)
	if !ok {
		return 0, false, diags
	}
	n, err := ParseSize(s)
	if rest, neg := strings.CutPrefix(strings.TrimSpace(s), "-"); neg {
		// A negative size is a limit of the wrong sign, not a typo in a unit.
		if _, perr := ParseSize(rest); perr == nil {
			return 0, false, append(diags, notPositive(attr, s))
		}
	}
	if err != nil {
		return 0, false, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid size",
			Detail:   fmt.Sprintf("Invalid value for %q: %s.", attr.Name, err),
			Subject:  attr.Expr.Range().Ptr(),
		})
	}
	if n <= 0 {
		return 0, false, append(diags, notPositive(attr, s))
	}
	return n, true, diags
}

// evalDuration decodes a positive duration such as "10s" or "1d".
func evalDuration(attr *hcl.Attribute, ectx *hcl.EvalContext) (time.Duration, bool, hcl.Diagnostics) {
	s, ok, diags := evalString(attr, ectx)
	if !ok {
		return 0, false, diags
	}
	d, err := ParseDuration(s)
	if err != nil {
		return 0, false, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid duration",
			Detail:   fmt.Sprintf("Invalid value for %q: %s.", attr.Name, err),
			Subject:  attr.Expr.Range().Ptr(),
		})
	}
	if d <= 0 {
		return 0, false, append(diags, notPositive(attr, s))
	}
	return d, true, diags
}

func invalidValue(attr *hcl.Attribute, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid value for %q", attr.Name),
		Detail:   detail,
		Subject:  attr.Expr.Range().Ptr(),
	}
}

func notPositive(attr *hcl.Attribute, got string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Value must be positive",
		Detail:   fmt.Sprintf("%s must be greater than zero; got %s.", attr.Name, got),
		Subject:  attr.Expr.Range().Ptr(),
	}
}

// nonEmptyAttr decodes content's optional attribute name, a non-empty string,
// into dst, and the range of its value into rng for later diagnostics; dst is
// left as it was when the attribute is absent or invalid.
func nonEmptyAttr(content *hcl.BodyContent, name string, ectx *hcl.EvalContext, dst *string, rng *hcl.Range) hcl.Diagnostics {
	a := content.Attributes[name]
	if a == nil {
		return nil
	}
	*rng = a.Expr.Range()
	s, ok, diags := evalNonEmpty(a, ectx)
	if ok {
		*dst = s
	}
	return diags
}
