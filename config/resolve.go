package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// resolve checks that every reference in a pipeline (and every stage's
// dead-letter sink) names a declared block, and (when all references could
// be read) warns about sources, stages and sinks that no pipeline uses: a
// source that feeds nothing is almost always a forgotten line in a
// pipeline, and loading its gadget would cost kernel resources for no
// output.
func (d *decoder) resolve(f *File) hcl.Diagnostics {
	var diags hcl.Diagnostics
	sourceRefs := make([]string, 0, len(f.Sources))
	for _, s := range f.Sources {
		sourceRefs = append(sourceRefs, s.Ref)
	}
	sinkRefs := make([]string, 0, len(f.Sinks))
	for _, s := range f.Sinks {
		sinkRefs = append(sinkRefs, s.Ref)
	}
	stageRefs := make([]string, 0, len(f.Stages))
	for _, s := range f.Stages {
		stageRefs = append(stageRefs, s.Ref)
	}

	used := map[string]bool{}
	for _, p := range f.Pipelines {
		for _, r := range p.Sources {
			used[r.String()] = true
			if f.Source(r) == nil && !d.broken[r.String()] {
				diags = append(diags, dangling(r, sourceRefs))
			}
		}
		for _, r := range p.Stages {
			used[r.String()] = true
			if f.Stage(r) == nil && !d.broken[r.String()] {
				diags = append(diags, dangling(r, stageRefs))
			}
		}
		for _, r := range p.Sinks {
			used[r.String()] = true
			if f.Sink(r) == nil && !d.broken[r.String()] {
				diags = append(diags, dangling(r, sinkRefs))
			}
		}
	}
	for _, st := range f.Stages {
		if r := st.DeadLetter; r != nil {
			used[r.String()] = true
			if f.Sink(*r) == nil && !d.broken[r.String()] {
				diags = append(diags, dangling(*r, sinkRefs))
			}
		}
	}
	if d.badRefs {
		return diags
	}
	for _, s := range f.Sources {
		if !used[s.Ref] && !d.unreferenceable[s.Ref] {
			diags = append(diags, unused(KindSource, s.Ref, s.DefRange))
		}
	}
	for _, s := range f.Stages {
		if !used[s.Ref] && !d.unreferenceable[s.Ref] {
			diags = append(diags, unused(KindStage, s.Ref, s.DefRange))
		}
	}
	for _, s := range f.Sinks {
		if !used[s.Ref] && !d.unreferenceable[s.Ref] {
			diags = append(diags, unused(KindSink, s.Ref, s.DefRange))
		}
	}
	return diags
}

func dangling(r Reference, declared []string) *hcl.Diagnostic {
	var detail string
	if len(declared) == 0 {
		detail = fmt.Sprintf("There is no %s; this file declares no %s blocks.", r, r.Kind)
	} else {
		detail = fmt.Sprintf("There is no %s; the declared %ss are %s.", r, r.Kind, strings.Join(declared, ", "))
		if m := suggest(r.String(), declared); m != "" {
			detail += fmt.Sprintf(" Did you mean %s?", m)
		}
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Reference to undeclared %s", r.Kind),
		Detail:   detail,
		Subject:  r.Range.Ptr(),
	}
}

func unused(kind, ref string, rng hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  fmt.Sprintf("Unused %s", kind),
		Detail:   fmt.Sprintf("%s is not listed in any pipeline, so no events flow through it.", ref),
		Subject:  rng.Ptr(),
	}
}
