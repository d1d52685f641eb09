package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
)

// resolvedGadget is a source's gadget, parsed and built but not loaded.
type resolvedGadget struct {
	source *config.Source
	gadget *sources.Gadget
	// wasm is the gadget's module (the image's, or the source's wasm
	// attribute), nil when it has none; see gadgetwasm.go.
	wasm *gadgetWasm
	// params are the parameter values the gadget loads with.
	params map[string]string
	// digest is the SHA-256 of the gadget's ELF.
	digest string
	// filter is how the source's filters run (workloads.go); hostFilter
	// its host-side part, nil when there is none.
	filter     *sourceFilter
	hostFilter *pipeline.FieldFilter
	// metadata is the gadget's gadget.yaml, nil when it has none.
	metadata []byte
}

// ResolveGadget finds a gadget by built-in name or ELF path. Relative
// paths are taken relative to baseDir. It returns the gadget's name (the
// built-in name, or the file name without its .o/.bpf.o suffix) and its ELF.
func ResolveGadget(ref, baseDir string) (string, []byte, error) {
	if b, ok := gadgets.Lookup(ref); ok {
		return b.Name, b.Object, nil
	}
	if !strings.ContainsAny(ref, "/.") {
		hint := ""
		if s := closest(ref, builtinNames()); s != "" {
			hint = fmt.Sprintf("; did you mean %q?", s)
		}
		return "", nil, fmt.Errorf("unknown gadget %q: not a built-in (%s), not a path to an eBPF ELF, and not an image reference (HOST/NAME:TAG or oci://...)%s", ref, strings.Join(builtinNames(), ", "), hint)
	}
	path := ref
	if !filepath.IsAbs(path) && baseDir != "" {
		path = filepath.Join(baseDir, path)
	}
	elf, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("read gadget %q: %w%s", ref, err, referenceHint(ref, err))
	}
	name := filepath.Base(path)
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".o"), ".bpf")
	return name, elf, nil
}

func builtinNames() []string {
	var names []string
	for _, b := range gadgets.Builtins() {
		names = append(names, b.Name)
	}
	sort.Strings(names)
	return names
}

// resolveGadgets parses every source's gadget, checks its parameters and
// builds it (its decode plans; nothing touches the kernel), turning
// problems into diagnostics at the offending config value. New runs the
// gadgets it returns; validation reads them. log is the gadgets' logger,
// nil for none.
func resolveGadgets(f *config.File, images *Images, log *slog.Logger) ([]*resolvedGadget, hcl.Diagnostics) {
	var out []*resolvedGadget
	var diags hcl.Diagnostics
	for _, src := range f.Sources {
		if src.Type != "gadget" {
			continue
		}
		baseDir := configDir(src.GadgetRange)
		var name string
		var elf, metadata []byte
		var image *oci.GadgetImage
		var err error
		if IsImageReference(src.Gadget) {
			if name, image, err = resolveImageGadget(src.Gadget, images); err == nil {
				elf, metadata = image.Program, image.Metadata
			}
		} else {
			name, elf, err = ResolveGadget(src.Gadget, baseDir)
			if err == nil {
				metadata, err = gadgetMetadataFile(src.Gadget, baseDir)
			}
		}
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown gadget", Detail: err.Error(), Subject: rangePtr(src.GadgetRange)})
			continue
		}
		md, err := gadgetMetadata(metadata)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid gadget metadata", Detail: err.Error(), Subject: rangePtr(src.GadgetRange)})
			continue
		}
		opts, typesFile, d := parseOptions(src, baseDir, md)
		if d != nil {
			diags = append(diags, d)
			continue
		}
		spec, err := sources.ParseGadget(name, elf, opts)
		if err != nil {
			diags = append(diags, gadgetDiagnostic(src, err))
			continue
		}
		params, moduleParams := map[string]string{}, map[string]string{}
		moduleDocs := moduleParamDocs(metadata)
		paramsOK := true
		for _, p := range src.Params {
			if _, ok := moduleDocs[p.Name]; ok {
				moduleParams[p.Name] = p.Value // the gadget's Wasm module's (gadget.yaml params.wasm)
				continue
			}
			params[p.Name] = p.Value
			if err := spec.CheckParams(map[string]string{p.Name: p.Value}); err != nil {
				subject, summary := p.Range, "Invalid gadget parameter"
				if errors.Is(err, sources.ErrUnknownParam) {
					subject, summary = p.NameRange, "Unknown gadget parameter"
				}
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error(), Subject: rangePtr(subject)})
				paramsOK = false
			}
		}
		wasm, d := resolveGadgetWasm(src, image, baseDir)
		if d == nil && wasm != nil {
			d = wasm.detectABI(src)
		}
		if d != nil {
			diags = append(diags, d)
			wasm = nil
		}
		if wasm != nil {
			wasm.host = f.Agent.Name
			wasm.params = map[string]string{}
			for key, doc := range moduleDocs {
				wasm.params[key] = doc.DefaultValue
			}
			maps.Copy(wasm.params, moduleParams)
		} else if len(moduleParams) > 0 && d == nil {
			for _, p := range src.Params {
				if _, ok := moduleParams[p.Name]; ok {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown gadget parameter",
						Detail: fmt.Sprintf("parameter %q belongs to the gadget's Wasm module (gadget.yaml params.wasm), and the gadget has none", p.Name), Subject: rangePtr(p.NameRange)})
				}
			}
			paramsOK = false
		}
		if !paramsOK {
			continue // building it would report the same parameters again
		}
		filter, ds := planSourceFilter(src, spec, f.Agent)
		diags = append(diags, ds...)
		cfg := gadgetConfig(src, f.Agent.Name, params, log)
		cfg.Filter = filter.kernel
		g, err := sources.NewGadget(spec, cfg)
		if err != nil {
			d := gadgetDiagnostic(src, err)
			if _, ok := errors.AsType[*sources.FilterError](err); ok {
				d.Subject = rangePtr(filter.rng)
			}
			diags = append(diags, d)
			continue
		}
		host, ds := filter.hostFilter(src, g.Schemas())
		diags = append(diags, ds...)
		// gadget.yaml and the event type file change the gadget too.
		digest := sha256Hex(append(append(slices.Clip(elf), metadata...), typesFile...))
		out = append(out, &resolvedGadget{
			source: src, gadget: g, wasm: wasm, params: params, digest: digest,
			filter: filter, hostFilter: host, metadata: metadata,
		})
	}
	return out, diags
}

// GadgetsOf parses and builds the gadgets of f's sources without loading
// them (nothing touches the kernel), for listings such as `sluice run
// GADGET --help`. Problems are diagnostics at the config values.
func GadgetsOf(f *config.File, images *Images) ([]*sources.Gadget, hcl.Diagnostics) {
	resolved, diags := resolveGadgets(f, images, nil)
	out := make([]*sources.Gadget, 0, len(resolved))
	for _, r := range resolved {
		out = append(out, r.gadget)
	}
	return out, diags
}

// gadgetConfig is how a source block configures its gadget; the plan and
// the live source build their gadgets from it alike.
func gadgetConfig(src *config.Source, host string, params map[string]string, log *slog.Logger) sources.GadgetConfig {
	return sources.GadgetConfig{
		Source:          src.Name,
		Host:            host,
		Params:          params,
		BufferSize:      int(src.BufferSize),
		Logger:          log,
		Interval:        src.Interval,
		Runs:            src.Runs,
		Ifaces:          src.Ifaces,
		NetNS:           src.NetNS,
		SampleFrequency: uint64(src.SampleFrequency),
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func rangePtr(r hcl.Range) *hcl.Range {
	if r.Filename == "" && r.Start.Line == 0 {
		return nil
	}
	return &r
}

// Validate checks what the config package cannot: that gadgets exist,
// parse and build (their decode plans, as New builds them), that
// parameters exist and fit their types, that stage modules
// exist (Check compiles and runs them), and that the pipeline
// graph is one the agent can run. It needs no privileges.
//
// Gadgets named by OCI reference are read from images, which FetchImages
// made; pass none for a config without references.
func Validate(f *config.File, images ...*Images) hcl.Diagnostics {
	var im *Images
	if len(images) > 0 {
		im = images[0]
	}
	_, _, _, diags := validate(f, im)
	return diags
}

// validate is Validate, returning what it resolved.
func validate(f *config.File, images *Images) ([]*resolvedGadget, []*resolvedApp, map[*config.Stage]stageModule, hcl.Diagnostics) {
	gadgets, diags := resolveGadgets(f, images, nil)
	apps, ds := resolveWasmBPF(f, images)
	diags = append(diags, ds...)
	modules, ds := resolveStages(f, images)
	diags = append(diags, ds...)
	diags = append(diags, validateGraph(f)...)
	diags = append(diags, validateControlSocket(f)...)
	diags = append(diags, validateNATSFiles(f)...)
	if !diags.HasErrors() {
		diags = append(diags, validateSinks(f, gadgets, apps)...)
	}
	return gadgets, apps, modules, diags
}

// Check is what `sluice config validate` runs: Validate, then, when that
// found no errors, what only this host and the config's Wasm can tell.
// Each gadget is checked against the running kernel as it is configured
// (see sources.Preflight: tracepoints, functions, interfaces, sampling
// limits; nothing loads). Every Wasm stage is compiled, checked against
// the stage ABI and initialised with its params; every gadget module is
// compiled, checked and its gadget_init run against the gadget's
// configured parameters; every wasm-bpf application is compiled and
// checked against the wasm_bpf interface. The config is resolved once for
// all. It needs no privileges, and says which checks it could not make
// without them; compiled code is cached under data_dir when that is
// writable, in memory otherwise.
func Check(ctx context.Context, f *config.File, images *Images) hcl.Diagnostics {
	_, diags := CheckWith(ctx, f, images, CheckOptions{})
	return diags
}

// CheckReport is Check, also returning what it decided about each gadget
// source that the config does not say: how each output's event type was
// found (see gadgetReport), for `sluice config validate` to show.
func CheckReport(ctx context.Context, f *config.File, images *Images) ([]string, hcl.Diagnostics) {
	return CheckWith(ctx, f, images, CheckOptions{})
}

// CheckOptions are the checks of CheckWith beyond Check's.
type CheckOptions struct {
	// Load loads every gadget into the kernel without attaching it, so
	// that the verifier judges its programs (`sluice config validate
	// --privileged`). It needs the privileges the agent needs.
	Load bool
}

// CheckWith is CheckReport, with the checks opts adds.
func CheckWith(ctx context.Context, f *config.File, images *Images, opts CheckOptions) ([]string, hcl.Diagnostics) {
	gadgets, apps, modules, diags := validate(f, images)
	report := gadgetReport(gadgets)
	if diags.HasErrors() {
		return report, diags
	}
	diags = append(diags, checkKernel(gadgets, sources.NewPreflight())...)
	if opts.Load && !diags.HasErrors() {
		diags = append(diags, loadGadgets(ctx, gadgets)...)
	}
	if len(modules) == 0 && len(apps) == 0 && !slices.ContainsFunc(gadgets, func(r *resolvedGadget) bool { return r.wasm != nil }) {
		return report, diags
	}
	cache := openStageCache(f, slog.New(slog.DiscardHandler))
	defer cache.Close(context.WithoutCancel(ctx))
	diags = append(diags, checkStages(ctx, f, modules, cache)...)
	diags = append(diags, checkWasmBPF(ctx, apps, cache)...)
	return report, append(diags, checkGadgetModules(ctx, gadgets, cache)...)
}

// validateGraph enforces that a source feeds exactly one pipeline: a source
// is one reader of kernel buffers, and its sequence numbers are per stream.
func validateGraph(f *config.File) hcl.Diagnostics {
	var diags hcl.Diagnostics
	owner := map[string]string{}
	for _, p := range f.Pipelines {
		for _, ref := range p.Sources {
			key := ref.String()
			if prev, ok := owner[key]; ok && prev != p.Name {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Source used by several pipelines",
					Detail:   fmt.Sprintf("%s already feeds pipeline %q; a source feeds one pipeline (declare a second source with the same gadget to feed another)", key, prev),
					Subject:  rangePtr(ref.Range),
				})
				continue
			}
			owner[key] = p.Name
		}
	}
	return diags
}

// closest returns the candidate within edit distance 3 of s, if any.
func closest(s string, candidates []string) string {
	best, bestDist := "", 4
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// gadgetMetadataFile returns the gadget.yaml of a built-in gadget, or the
// one beside a gadget ELF: <name>.yaml for <name>.bpf.o, else gadget.yaml
// in the ELF's folder (Inspektor Gadget's layout). None is not an error.
func gadgetMetadataFile(ref, baseDir string) ([]byte, error) {
	if b, ok := gadgets.Lookup(ref); ok {
		return b.Metadata, nil
	}
	path := ref
	if !filepath.IsAbs(path) && baseDir != "" {
		path = filepath.Join(baseDir, path)
	}
	dir, base := filepath.Split(path)
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".o"), ".bpf")
	for _, candidate := range []string{filepath.Join(dir, base+".yaml"), filepath.Join(dir, oci.MetadataFile)} {
		b, err := os.ReadFile(candidate)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read gadget metadata %s: %w", candidate, err)
		}
	}
	return nil, nil
}

// moduleParamDocs returns the parameters gadget.yaml gives the gadget's
// Wasm module (params.wasm), by key.
func moduleParamDocs(raw []byte) map[string]oci.ParamDoc {
	out := map[string]oci.ParamDoc{}
	if len(raw) == 0 {
		return out
	}
	md, err := oci.ParseMetadata(raw)
	if err != nil {
		return out // gadgetMetadata reports it
	}
	for name, doc := range md.Params["wasm"] {
		key := doc.Key
		if key == "" {
			key = name
		}
		out[key] = doc
	}
	return out
}

// gadgetMetadata converts a gadget.yaml into what sources uses of it.
func gadgetMetadata(raw []byte) (*sources.Metadata, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	md, err := oci.ParseMetadata(raw)
	if err != nil {
		return nil, err
	}
	out := &sources.Metadata{Params: map[string]sources.ParamDoc{}, DataSources: map[string]sources.DataSourceDoc{}}
	for name, p := range md.EBPFParamDocs() {
		out.Params[name] = sources.ParamDoc{Key: p.Key, DefaultValue: p.DefaultValue, Description: p.Description}
	}
	for name, ds := range md.DataSources {
		if ds == nil {
			continue
		}
		doc := sources.DataSourceDoc{Annotations: ds.Annotations, Fields: map[string]map[string]string{}}
		for field, f := range ds.Fields {
			doc.Fields[field] = f.Annotations
		}
		out.DataSources[name] = doc
	}
	return out, nil
}
