package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

func init() { registerSink("stdout", decodeStdoutSink) }

var stdoutSinkSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "format"},
		{Name: "fields"},
		{Name: "sort"},
		{Name: "max_rows"},
	},
}

// decodeStdoutSink decodes `sink "stdout" NAME { ... }`.
func decodeStdoutSink(body hcl.Body, ectx *hcl.EvalContext, sink *Sink) hcl.Diagnostics {
	out := &StdoutSink{Format: DefaultStdoutFormat}
	sink.Stdout = out
	content, diags := body.Content(stdoutSinkSchema)
	if a := content.Attributes["format"]; a != nil {
		s, ok, d := evalEnum(a, ectx, stdoutFormats)
		diags = append(diags, d...)
		if ok {
			out.Format = s
		}
	}
	if a := content.Attributes["fields"]; a != nil {
		fields, _, d := evalStringList(a, ectx)
		diags = append(diags, d...)
		out.Fields = fields
	}
	if a := content.Attributes["sort"]; a != nil {
		s, ok, d := evalNonEmpty(a, ectx)
		diags = append(diags, d...)
		if ok {
			if bad := badSortKey(s); bad != "" {
				diags = append(diags, invalidValue(a, fmt.Sprintf("sort key %q names no field; write field names separated by commas, each prefixed with - to sort in descending order (\"-bytes,pid\").", bad)))
			} else {
				out.Sort = s
			}
		}
	}
	if a := content.Attributes["max_rows"]; a != nil {
		n, ok, d := evalIntIn(a, ectx, maxRowsBound)
		diags = append(diags, d...)
		if ok {
			out.MaxRows = n
		}
	}
	return diags
}

// badSortKey returns the first comma-separated key of a sort spec that
// names no field ("-", "+"), "" when all do.
func badSortKey(spec string) string {
	for _, k := range strings.Split(spec, ",") {
		k = strings.TrimSpace(k)
		if k != "" && strings.TrimLeft(k, "+-") == "" {
			return k
		}
	}
	return ""
}
