package agent

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
)

// GadgetDoc describes a source's gadget for people (`sluice run GADGET
// --help`): its parameters, the filters it runs in the kernel and the
// fields of its events, with what its gadget.yaml says about them.
type GadgetDoc struct {
	Source, Gadget, Description string
	Params                      []ParamDoc
	// KernelFilters are the filters the gadget implements (pid, tid, uid,
	// gid, comm, mntns, cgroup, exclude_pid); the others run on the host.
	KernelFilters []string
	Fields        []FieldDoc
}

// ParamDoc is one parameter: its type, default and meaning.
type ParamDoc struct {
	Name, Type, Default, Description string
}

// FieldDoc is one field of the gadget's events.
type FieldDoc struct {
	Name, Type, Description string
}

// envelopeDocs describe the keys every event starts with.
var envelopeDocs = map[string]string{
	"time":   "Wall-clock time of the event (RFC 3339, UTC)",
	"host":   "The agent's name",
	"source": "The source's name in the config",
	"gadget": "The gadget's name",
	"seq":    "Per-source sequence number",
}

// Describe resolves the config's gadgets as New would (nothing loads) and
// describes each. The parameters of the filter contract (targ_pid, ...)
// are left out: the filter flags and the filter block set them.
func Describe(f *config.File, images *Images) ([]GadgetDoc, hcl.Diagnostics) {
	resolved, diags := resolveGadgets(f, images, nil)
	var docs []GadgetDoc
	for _, r := range resolved {
		spec := r.gadget.Spec()
		md := &oci.Metadata{}
		if r.metadata != nil {
			if m, err := oci.ParseMetadata(r.metadata); err == nil {
				md = m
			}
		}
		doc := GadgetDoc{Source: r.source.Name, Gadget: spec.Name, Description: md.Description, KernelFilters: spec.FilterSupport()}
		paramDocs := md.EBPFParamDocs()
		for _, p := range spec.Params {
			if sources.FilterParam(p.Name) {
				continue
			}
			doc.Params = append(doc.Params, ParamDoc{Name: p.Name, Type: p.Kind.String(), Default: p.Default, Description: paramDocs[p.Name].Description})
		}
		fieldDocs := map[string]string{}
		for _, ds := range md.DataSources {
			for name, fd := range ds.Fields {
				fieldDocs[name] = fd.Annotations["description"]
			}
		}
		seen := map[string]bool{}
		for _, sc := range r.gadget.Schemas() {
			for _, fl := range sc.Fields {
				if seen[fl.Name] {
					continue
				}
				seen[fl.Name] = true
				doc.Fields = append(doc.Fields, FieldDoc{Name: fl.Name, Type: kindName(fl.Kind), Description: fieldDoc(fl.Name, fieldDocs)})
			}
		}
		docs = append(docs, doc)
	}
	return docs, diags
}

// fieldDoc finds a rendered field's description: its own, its
// companion's (X_raw, X_name, X_error), or its struct's (src.port).
func fieldDoc(name string, docs map[string]string) string {
	if d, ok := envelopeDocs[name]; ok {
		return d
	}
	if d := docs[name]; d != "" {
		return d
	}
	for suffix, what := range map[string]string{"_raw": "as a number", "_name": "name", "_error": "error name (negative values)"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && docs[base] != "" {
			return docs[base] + ": " + what
		}
	}
	if base, member, ok := strings.Cut(name, "."); ok && docs[base] != "" {
		return docs[base] + ": " + member
	}
	return ""
}

func kindName(k pipeline.FieldKind) string {
	switch k {
	case pipeline.FieldInt:
		return "int"
	case pipeline.FieldUint:
		return "uint"
	case pipeline.FieldBool:
		return "bool"
	case pipeline.FieldFloat:
		return "float"
	case pipeline.FieldString:
		return "string"
	case pipeline.FieldList:
		return "list"
	case pipeline.FieldBytes:
		return "bytes"
	}
	return "?"
}

// gadgetMetadata finds a gadget's gadget.yaml: a built-in's, an image's,
// or the file beside an ELF given by path.
func gadgetMetadata(ref, baseDir string, image *oci.GadgetImage) []byte {
	if image != nil {
		return image.Metadata
	}
	if b, ok := gadgets.Lookup(ref); ok {
		return b.Metadata
	}
	path := ref
	if !filepath.IsAbs(path) && baseDir != "" {
		path = filepath.Join(baseDir, path)
	}
	md, err := os.ReadFile(filepath.Join(filepath.Dir(path), oci.MetadataFile))
	if err != nil {
		return nil
	}
	return md
}
