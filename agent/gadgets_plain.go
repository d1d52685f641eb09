package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/sources/decode"
)

// What a source says about a plain libbpf object (event_type_file,
// programs, skip_programs, fields), turned into parse options, and the
// gadget's errors about them pointed back at the config.

// parseOptions builds a source's parse options, reading its event type
// file (relative to the config's folder). It returns the file's bytes for
// the source's digest.
func parseOptions(src *config.Source, baseDir string, md *sources.Metadata) (sources.ParseOptions, []byte, *hcl.Diagnostic) {
	opts := sources.ParseOptions{
		EventType: src.EventType, Map: src.Map, Metadata: md,
		Programs: src.Programs, SkipPrograms: src.SkipPrograms,
		Fields: fieldHints(src.Fields),
	}
	if src.EventTypeFile == "" {
		return opts, nil, nil
	}
	path := src.EventTypeFile
	if !filepath.IsAbs(path) && baseDir != "" {
		path = filepath.Join(baseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return opts, nil, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unreadable event type file",
			Detail: fmt.Sprintf("read event_type_file: %v", err), Subject: rangePtr(src.EventTypeFileRange)}
	}
	opts.EventTypeFile, opts.EventTypeFileName = b, src.EventTypeFile
	return opts, b, nil
}

// fieldHints converts the config's hints to the decoder's, keyed by name.
func fieldHints(hints []config.FieldHint) map[string]decode.FieldHint {
	if len(hints) == 0 {
		return nil
	}
	out := make(map[string]decode.FieldHint, len(hints))
	for _, h := range hints {
		out[h.Name] = decode.FieldHint{As: h.As, Count: h.Count, Size: h.Size, Family: h.Family, Tag: h.Tag, Cases: h.Cases, Name: h.Rename, Member: h.Member}
	}
	return out
}

// gadgetDiagnostic points a gadget's parse or build error at the config
// value it is about: the option a sources.OptionError names (the program
// or field hint within it), else the gadget attribute.
func gadgetDiagnostic(src *config.Source, err error) *hcl.Diagnostic {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid gadget", Detail: err.Error(), Subject: rangePtr(src.GadgetRange)}
	var oe *sources.OptionError
	if !errors.As(err, &oe) {
		return d
	}
	at := func(r hcl.Range) {
		if p := rangePtr(r); p != nil {
			d.Subject = p
		}
	}
	element := func(list []string, ranges []hcl.Range) {
		if i := slices.Index(list, oe.Value); i >= 0 && i < len(ranges) {
			at(ranges[i])
		} else if len(ranges) > 0 {
			at(ranges[0])
		}
	}
	switch oe.Option {
	case "event_type":
		d.Summary = "Event type not found"
		if src.EventType != "" {
			at(src.EventTypeRange)
		}
	case "event_type_file":
		d.Summary = "Invalid event type file"
		at(src.EventTypeFileRange)
	case "map":
		at(src.MapRange)
	case "programs":
		d.Summary = "Unknown program"
		element(src.Programs, src.ProgramsRanges)
	case "skip_programs":
		d.Summary = "Unknown program"
		element(src.SkipPrograms, src.SkipProgramsRanges)
	case "fields":
		d.Summary = "Invalid field hint"
		for _, h := range src.Fields {
			if h.Name == oe.Field {
				at(h.Range)
			}
		}
	}
	return d
}

// gadgetReport says, per gadget source, how each output's event type was
// found and which programs run, as `sluice config validate` prints it.
func gadgetReport(gadgets []*resolvedGadget) []string {
	var out []string
	for _, r := range gadgets {
		spec := r.gadget.Spec()
		for _, st := range spec.Streams {
			out = append(out, fmt.Sprintf("%s: output %s (map %s): %s", r.source.Ref, st.Name, st.Map, st.TypeChoice()))
		}
		if len(r.source.Programs) > 0 || len(r.source.SkipPrograms) > 0 {
			names := make([]string, len(spec.Programs))
			for i, p := range spec.Programs {
				names[i] = p.Name
			}
			out = append(out, fmt.Sprintf("%s: programs %s", r.source.Ref, strings.Join(names, ", ")))
		}
	}
	return out
}
