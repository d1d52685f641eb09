package sources

import (
	"errors"
	"strings"
	"testing"
)

// TestMetadataParamKeysAndDefaults: gadget.yaml's key is accepted beside
// the variable's name (IG's `--pid` for targ_pid), its default replaces the
// compiled-in one, and its field annotations reach the schema.
func TestMetadataParamKeysAndDefaults(t *testing.T) {
	md := &Metadata{
		Params: map[string]ParamDoc{"target_tgid": {Key: "pid", DefaultValue: "7", Description: "Show only this process"}},
		DataSources: map[string]DataSourceDoc{"writes": {Fields: map[string]map[string]string{
			"fd":    {"description": "The descriptor", "columns.hidden": "true", "columns.width": "3"},
			"bytes": {"metrics.unit": "B"},
		}}},
	}
	spec, err := ParseGadget("ig_topper", testObject(t, "ig_topper"), ParseOptions{Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := spec.Param("target_tgid")
	if p.Key != "pid" || p.Default != "7" || p.Description != "Show only this process" {
		t.Errorf("param = %+v, want key pid, default 7 and the description", p)
	}
	g, err := NewGadget(spec, GadgetConfig{Source: "top"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := g.Param("pid"); err != nil || v != "7" {
		t.Errorf("Param(pid) = %q, %v; want the gadget.yaml default 7", v, err)
	}
	if err := g.SetParam("pid", "42"); err != nil {
		t.Fatal(err)
	}
	if v, _ := g.Param("target_tgid"); v != "42" {
		t.Errorf("after SetParam(pid, 42), target_tgid = %q", v)
	}
	if err := spec.CheckParams(map[string]string{"pid": "1", "target_tgid": "2"}); err == nil || !strings.Contains(err.Error(), "set twice") {
		t.Errorf("setting a parameter by key and by name: %v, want an error", err)
	}
	var pe *ParamError
	if err := spec.CheckParams(map[string]string{"pdi": "1"}); !errors.As(err, &pe) || !strings.Contains(err.Error(), "pid or target_tgid") {
		t.Errorf("unknown parameter: %v, want the list to name the key and the variable", err)
	}
	var fd, bytes bool
	for _, s := range g.Schemas() {
		for _, f := range s.Fields {
			switch f.Name {
			case "fd":
				fd = f.Hidden && f.Width == 3 && f.Doc == "The descriptor"
			case "bytes":
				bytes = f.Unit == "B"
			}
		}
	}
	if !fd || !bytes {
		t.Errorf("field annotations not applied (fd %v, bytes %v)", fd, bytes)
	}
	if _, err := ParseGadget("ig_topper", testObject(t, "ig_topper"), ParseOptions{Metadata: &Metadata{
		Params: map[string]ParamDoc{"target_tgid": {DefaultValue: "many"}},
	}}); err == nil || !strings.Contains(err.Error(), `gadget.yaml default "many" of parameter target_tgid`) {
		t.Errorf("an ill-typed gadget.yaml default: %v, want an error naming it", err)
	}
}
