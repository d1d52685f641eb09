package config

import "github.com/hashicorp/hcl/v2"

func init() { registerSink("null", decodeNullSink) }

// decodeNullSink decodes `sink "null" NAME {}`, which takes no attributes.
func decodeNullSink(body hcl.Body, _ *hcl.EvalContext, sink *Sink) hcl.Diagnostics {
	sink.Null = &NullSink{}
	_, diags := body.Content(&hcl.BodySchema{})
	return diags
}
