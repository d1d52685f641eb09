package config

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
)

// A sourceDecoder decodes the body of a `source "<type>" "<name>"` block into
// src, whose header fields (Type, Name, DefRange, Ref) are already set.
type sourceDecoder func(body hcl.Body, ectx *hcl.EvalContext, src *Source) hcl.Diagnostics

// A sinkDecoder decodes the body of a `sink "<type>" "<name>"` block and sets
// the type's pointer field on sink.
type sinkDecoder func(body hcl.Body, ectx *hcl.EvalContext, sink *Sink) hcl.Diagnostics

// The registries are filled by init functions in the component files
// (source_gadget.go, sink_stdout.go) and only read afterwards, so decoding
// needs no locking.
var (
	sourceTypes = map[string]sourceDecoder{}
	sinkTypes   = map[string]sinkDecoder{}
)

func registerSource(typ string, dec sourceDecoder) {
	if _, dup := sourceTypes[typ]; dup {
		panic(fmt.Sprintf("config: source type %q registered twice", typ))
	}
	sourceTypes[typ] = dec
}

func registerSink(typ string, dec sinkDecoder) {
	if _, dup := sinkTypes[typ]; dup {
		panic(fmt.Sprintf("config: sink type %q registered twice", typ))
	}
	sinkTypes[typ] = dec
}

// SourceTypes returns the registered source types, sorted.
func SourceTypes() []string { return sortedKeys(sourceTypes) }

// SinkTypes returns the registered sink types, sorted.
func SinkTypes() []string { return sortedKeys(sinkTypes) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// unknownType reports a component block whose type label has no decoder.
func unknownType(kind string, b *hcl.Block, known []string) *hcl.Diagnostic {
	typ := b.Labels[0]
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Unknown %s type", kind),
		Detail: fmt.Sprintf("There is no %s type %q; the known %s types are %s.%s",
			kind, typ, kind, quotedList(known), didYouMean(typ, known)),
		Subject: b.LabelRanges[0].Ptr(),
		Context: b.DefRange.Ptr(),
	}
}
