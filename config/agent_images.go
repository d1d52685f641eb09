package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Images is the agent's image policy: how OCI references in gadget and
// module values are fetched and what they must satisfy. The agent block
// holds it:
//
//	agent {
//	  pull_policy = "missing"
//	  allow       = ["registry.example.com/gadgets/*", "sha256:..."]
//	  registries { insecure = ["registry.lan:5000"] }
//	  verify { public_keys = ["/etc/sluice/cosign.pub"] }
//	}
type Images struct {
	// PullPolicy is always, missing or never; "" leaves it to the agent,
	// whose default is missing (oci.DefaultPullPolicy).
	PullPolicy      string
	PullPolicyRange hcl.Range
	// Allow is the allow-list (empty: every image); AllowRanges[i] covers
	// Allow[i], for diagnostics about one rule.
	Allow       []string
	AllowRanges []hcl.Range
	// InsecureRegistries are reached over plain HTTP.
	InsecureRegistries []string
	// PublicKeys are PEM public key files (relative to the config file);
	// when set, only images signed by one of them run.
	PublicKeys       []string
	PublicKeysRanges []hcl.Range
}

var pullPolicies = []string{"always", "missing", "never"}

var registriesSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "insecure"}}}
var verifySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "public_keys", Required: true}}}

// decodeImagesAttr decodes one of the agent's image attributes.
func decodeImagesAttr(attr *hcl.Attribute, ectx *hcl.EvalContext, im *Images) hcl.Diagnostics {
	switch attr.Name {
	case "pull_policy":
		var diags hcl.Diagnostics
		im.PullPolicy, diags = enumOr(attr, ectx, pullPolicies, im.PullPolicy)
		im.PullPolicyRange = attr.Expr.Range()
		return diags
	case "allow":
		var diags hcl.Diagnostics
		im.Allow, im.AllowRanges, diags = evalStringList(attr, ectx)
		return diags
	}
	return nil
}

// decodeImagesBlock decodes a registries or verify block of the agent.
func decodeImagesBlock(b *hcl.Block, ectx *hcl.EvalContext, im *Images) hcl.Diagnostics {
	switch b.Type {
	case "registries":
		content, diags := b.Body.Content(registriesSchema)
		if a := content.Attributes["insecure"]; a != nil {
			list, _, ds := evalStringList(a, ectx)
			diags = append(diags, ds...)
			im.InsecureRegistries = append(im.InsecureRegistries, list...)
		}
		return diags
	case "verify":
		content, diags := b.Body.Content(verifySchema)
		if a := content.Attributes["public_keys"]; a != nil {
			list, ranges, ds := evalStringList(a, ectx)
			diags = append(diags, ds...)
			if len(list) == 0 && !ds.HasErrors() {
				diags = append(diags, invalidValue(a, "public_keys must list at least one PEM public key file; remove the verify block to run unsigned images."))
			}
			im.PublicKeys = append(im.PublicKeys, list...)
			im.PublicKeysRanges = append(im.PublicKeysRanges, ranges...)
		}
		return diags
	}
	return nil
}

// evalStringList decodes a list of non-empty strings, with the range of
// each element when the expression is a literal list.
func evalStringList(attr *hcl.Attribute, ectx *hcl.EvalContext) ([]string, []hcl.Range, hcl.Diagnostics) {
	v, diags := evalAs(attr, ectx, cty.List(cty.String))
	if diags.HasErrors() || v.IsNull() {
		return nil, nil, diags
	}
	exprs, _ := hcl.ExprList(attr.Expr)
	var out []string
	var ranges []hcl.Range
	for i, ev := range v.AsValueSlice() {
		rng := attr.Expr.Range()
		if i < len(exprs) {
			rng = exprs[i].Range()
		}
		if ev.IsNull() || ev.AsString() == "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value",
				Detail: fmt.Sprintf("%s must not contain empty strings.", attr.Name), Subject: rng.Ptr()})
			continue
		}
		out = append(out, ev.AsString())
		ranges = append(ranges, rng)
	}
	return out, ranges, diags
}
