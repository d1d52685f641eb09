package oci

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"go.yaml.in/yaml/v3"
)

// MetadataFile is the metadata file of a gadget folder, as Inspektor Gadget
// names it.
const MetadataFile = "gadget.yaml"

// Metadata is a gadget's metadata, Inspektor Gadget's gadget.yaml: what the
// gadget is, what its parameters and fields mean. Unknown keys are kept in
// the blob (the image carries the file as written) and ignored here.
type Metadata struct {
	Name             string                 `yaml:"name"`
	Description      string                 `yaml:"description,omitempty"`
	HomepageURL      string                 `yaml:"homepageURL,omitempty"`
	DocumentationURL string                 `yaml:"documentationURL,omitempty"`
	SourceURL        string                 `yaml:"sourceURL,omitempty"`
	Annotations      map[string]string      `yaml:"annotations,omitempty"`
	DataSources      map[string]*DataSource `yaml:"datasources,omitempty"`
	// DataSourcesCamel is the same under the spelling some of IG's gadgets
	// use (dataSources); ParseMetadata merges it into DataSources.
	DataSourcesCamel map[string]*DataSource `yaml:"dataSources,omitempty"`
	// Params maps an operator ("ebpf" for the program's GADGET_PARAMs) to
	// its parameters by variable name.
	Params map[string]map[string]ParamDoc `yaml:"params,omitempty"`
	// EBPFParams is the older layout of Params["ebpf"], still read.
	EBPFParams map[string]ParamDoc `yaml:"ebpfParams,omitempty"`
}

// DataSource documents one output of the gadget (a tracer) and its fields.
type DataSource struct {
	Annotations map[string]string `yaml:"annotations,omitempty"`
	Fields      map[string]Field  `yaml:"fields,omitempty"`
}

// Field documents one field; the annotation "description" is what people read.
type Field struct {
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// ParamDoc documents one parameter.
type ParamDoc struct {
	Key          string `yaml:"key,omitempty"`
	DefaultValue string `yaml:"defaultValue,omitempty"`
	Description  string `yaml:"description,omitempty"`
}

// ParseMetadata decodes a gadget.yaml. It is lenient about keys it does not
// know (images from Inspektor Gadget carry more), strict about types.
func ParseMetadata(b []byte) (*Metadata, error) {
	var md Metadata
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&md); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decode gadget metadata: %w", err)
	}
	for name, ds := range md.DataSourcesCamel {
		if md.DataSources == nil {
			md.DataSources = map[string]*DataSource{}
		}
		if _, ok := md.DataSources[name]; !ok {
			md.DataSources[name] = ds
		}
	}
	md.DataSourcesCamel = nil
	return &md, nil
}

// EBPFParamDocs returns the documentation of the program's parameters by
// variable name, from either layout.
func (m *Metadata) EBPFParamDocs() map[string]ParamDoc {
	out := map[string]ParamDoc{}
	maps.Copy(out, m.EBPFParams)
	maps.Copy(out, m.Params["ebpf"])
	return out
}

// ParamNames returns the documented eBPF parameter names, sorted.
func (m *Metadata) ParamNames() []string {
	return slices.Sorted(maps.Keys(m.EBPFParamDocs()))
}
