package sources

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/pipeline"
)

// Metadata is what sluice takes from a gadget's gadget.yaml (Inspektor
// Gadget's metadata file): how its parameters are named on the command line
// and documented, and how its fields are shown. The agent fills it from the
// image or the file next to the ELF; sources does not read YAML.
type Metadata struct {
	// Params documents the eBPF parameters, by variable name.
	Params map[string]ParamDoc
	// DataSources holds each output's annotations and its fields'
	// annotations, by output name (tracer, iterator or map iterator).
	DataSources map[string]DataSourceDoc
}

// ParamDoc is a parameter's entry in gadget.yaml.
type ParamDoc struct {
	Key          string // the name users give (`--param pid=1`); "" = the variable name
	DefaultValue string // overrides the value compiled into the gadget; "" = keep it
	Description  string
}

// DataSourceDoc is an output's entry in gadget.yaml.
type DataSourceDoc struct {
	Annotations map[string]string
	Fields      map[string]map[string]string // field -> annotations
}

// applyMetadata gives the parameters their keys, defaults and
// descriptions from gadget.yaml. A default that does not fit the
// parameter's type is an error naming both.
func (g *GadgetSpec) applyMetadata() error {
	if g.Metadata == nil {
		return nil
	}
	keys := map[string]string{}
	for i := range g.Params {
		p := &g.Params[i]
		doc, ok := g.Metadata.Params[p.Name]
		if !ok {
			continue
		}
		p.Description = doc.Description
		if doc.Key != "" && doc.Key != p.Name {
			if other, dup := keys[doc.Key]; dup {
				return fmt.Errorf("gadget.yaml gives parameters %s and %s the same key %q", other, p.Name, doc.Key)
			}
			keys[doc.Key] = p.Name
			p.Key = doc.Key
		}
		if doc.DefaultValue != "" {
			if _, err := p.encode(doc.DefaultValue); err != nil {
				return fmt.Errorf("gadget.yaml default %q of parameter %s: %w", doc.DefaultValue, p.Name, err)
			}
			p.Default = doc.DefaultValue
		}
	}
	for i := range g.Params {
		if other, clash := keys[g.Params[i].Name]; clash && other != g.Params[i].Name {
			return fmt.Errorf("gadget.yaml gives parameter %s the key %q, which is the name of another parameter", other, g.Params[i].Name)
		}
	}
	return nil
}

// DataSourceAnnotations returns the gadget.yaml annotations of output name.
func (g *GadgetSpec) DataSourceAnnotations(name string) map[string]string {
	if g.Metadata == nil {
		return nil
	}
	return g.Metadata.DataSources[name].Annotations
}

// annotateSchema applies gadget.yaml's field annotations to a stream's
// schema: description, columns.width, columns.hidden and metrics.unit. The
// schema must not be shared yet.
func (g *GadgetSpec) annotateSchema(output string, s *pipeline.Schema) {
	if g.Metadata == nil {
		return
	}
	fields := g.Metadata.DataSources[output].Fields
	for i := range s.Fields {
		f := &s.Fields[i]
		ann, ok := fields[f.Name]
		if !ok {
			continue
		}
		if d := ann["description"]; d != "" {
			f.Doc = d
		}
		if w, err := strconv.Atoi(ann["columns.width"]); err == nil && w > 0 {
			f.Width = w
		}
		if h, err := strconv.ParseBool(ann["columns.hidden"]); err == nil {
			f.Hidden = h
		}
		if u := ann["metrics.unit"]; u != "" {
			f.Unit = u
		}
	}
}

// paramByKey finds a parameter by its variable name or its gadget.yaml key.
func (g *GadgetSpec) paramByKey(name string) (*ParamSpec, bool) {
	if p, ok := g.Param(name); ok {
		return p, true
	}
	for i := range g.Params {
		if g.Params[i].Key == name {
			return &g.Params[i], true
		}
	}
	return nil, false
}

// ParamHelp lists the gadget's parameters for a --help style listing: one
// line each with the key users type, the variable when the key differs,
// the type, the default and the description, sorted by key.
func (g *GadgetSpec) ParamHelp() []string {
	type row struct{ key, text string }
	var rows []row
	for _, p := range g.Params {
		if FilterParam(p.Name) {
			continue // set by the filter flags; see FilterSupport
		}
		key := p.Name
		detail := []string{}
		if p.Key != "" {
			key = p.Key
			detail = append(detail, "variable "+p.Name)
		}
		if p.Type != "" && p.Type != fmt.Sprint(p.Kind) { // "pid_t", not "int (int)"
			detail = append(detail, p.Type)
		}
		def := p.Default
		if p.Kind == ParamString {
			def = strconv.Quote(def)
		}
		alias := ""
		if len(detail) > 0 {
			alias = " (" + strings.Join(detail, ", ") + ")"
		}
		text := fmt.Sprintf("%s=%s%s, default %s", key, p.Kind, alias, def)
		if len(p.Enum) > 0 {
			text += "; one of " + p.enumNames()
		}
		if p.SizesMap != "" {
			text += fmt.Sprintf("; sizes map %s", p.SizesMap)
		}
		if p.Description != "" {
			text += ": " + p.Description
		}
		rows = append(rows, row{key, text})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].key < rows[j].key })
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.text
	}
	return out
}

// FieldHelp lists an output's fields with their descriptions, marking
// those tables hide.
func FieldHelp(s *pipeline.Schema) []string {
	var out []string
	for _, f := range s.Fields {
		switch f.Name {
		case "time", "host", "source", "gadget", "seq", "snapshot", "snapshot_rows":
			continue
		}
		line := f.Name
		if f.Hidden {
			line += " (hidden in tables)"
		}
		if f.Doc != "" {
			line += ": " + f.Doc
		}
		out = append(out, strings.TrimSpace(line))
	}
	return out
}
