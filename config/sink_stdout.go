package config

import "github.com/hashicorp/hcl/v2"

func init() { registerSink("stdout", decodeStdoutSink) }

var stdoutSinkSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "format"},
		{Name: "fields"},
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
	return diags
}
