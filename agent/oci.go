package agent

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/oci/sign"
)

// Images are the OCI images a config references, fetched under the
// agent's image policy (pull policy, allow-list, signatures) by
// [FetchImages] before [New], so that New, which builds the agent's
// components, stays offline and never blocks on a registry.
//
// An Images is read-only once FetchImages returns and safe for concurrent
// use.
type Images struct {
	gadgets map[string]*oci.GadgetImage
	stages  map[string]*oci.StageImage
	apps    map[string]*oci.WasmBPFImage
	// fetch are the options they were fetched with, which the agent
	// fetches later versions of its stages with.
	fetch FetchOptions
}

// WasmBPF returns the fetched wasm-bpf application image a module value
// names.
func (im *Images) WasmBPF(value string) (*oci.WasmBPFImage, bool) {
	if im == nil {
		return nil, false
	}
	a, ok := im.apps[value]
	return a, ok
}

// Gadget returns the fetched gadget image a config value names.
func (im *Images) Gadget(value string) (*oci.GadgetImage, bool) {
	if im == nil {
		return nil, false
	}
	g, ok := im.gadgets[value]
	return g, ok
}

// StageModule returns the Wasm module of the fetched stage image that a
// module value (an image reference, with or without oci://) names.
func (im *Images) StageModule(value string) ([]byte, error) {
	img, err := im.stageImage(value)
	if err != nil {
		return nil, err
	}
	return img.Module, nil
}

// stageImage returns the fetched stage image a module value names. It is
// the hook the Wasm stage module resolution calls for OCI references.
func (im *Images) stageImage(value string) (*oci.StageImage, error) {
	if im != nil {
		if s, ok := im.stages[value]; ok {
			return s, nil
		}
	}
	return nil, fmt.Errorf("stage image %q was not fetched (agent.FetchImages fetches every image module of the config)", value)
}

// FetchOptions are the process-level inputs of FetchImages.
type FetchOptions struct {
	// DataDir overrides the config's data_dir for the image store (the
	// --data-dir flag, or SLUICE_DATA_DIR).
	DataDir string
	// Progress, when set, is told about blobs being pulled.
	Progress func(oci.ProgressEvent)
	// PullPolicy overrides the config's pull_policy when set.
	PullPolicy string
}

// StageModuleRef is a stage's module value and where the config has it.
type StageModuleRef struct {
	Value string
	Range hcl.Range
}

// IsImageReference tells an OCI reference from a built-in name or a file
// path, for gadget values and stage modules alike (see docs/oci.md,
// "References").
func IsImageReference(value string) bool { return oci.LooksLikeReference(value) }

// referenceHint explains a missing file whose name reads like an image
// reference without a registry host ("registry/stages/x:v1"): a reference
// always names its registry.
func referenceHint(value string, err error) string {
	if !errors.Is(err, fs.ErrNotExist) || strings.HasPrefix(value, ".") || strings.HasPrefix(value, "/") {
		return ""
	}
	if ref, perr := oci.ParseReference("localhost/" + value); perr == nil && (ref.Tag != "" || ref.Digest != "") && strings.ContainsAny(value, ":@") {
		return fmt.Sprintf("; as an image reference it needs its registry host (localhost:5000/%s, registry.example.com/%s) or the oci:// prefix", value, value)
	}
	return ""
}

// FetchImages fetches every OCI reference of f (gadget values, stage
// modules and wasm_bpf modules, with or without oci://) into the local
// store and reads them, refusing images the policy refuses. Problems are
// diagnostics at the offending config value. A config without OCI
// references opens no store.
func FetchImages(ctx context.Context, f *config.File, opts FetchOptions) (*Images, hcl.Diagnostics) {
	im := &Images{gadgets: map[string]*oci.GadgetImage{}, stages: map[string]*oci.StageImage{}, apps: map[string]*oci.WasmBPFImage{}, fetch: opts}
	type want struct {
		value      string
		rng        hcl.Range
		stage, app bool
	}
	var wants []want
	for _, src := range f.Sources {
		if src.Type == "gadget" && IsImageReference(src.Gadget) {
			wants = append(wants, want{value: src.Gadget, rng: src.GadgetRange})
		}
	}
	for _, m := range StageModuleRefs(f) {
		if slices.ContainsFunc(wants, func(w want) bool { return w.stage && w.value == m.Value }) {
			continue
		}
		wants = append(wants, want{value: m.Value, rng: m.Range, stage: true})
	}
	for _, m := range WasmBPFModuleRefs(f) {
		if slices.ContainsFunc(wants, func(w want) bool { return w.app && w.value == m.Value }) {
			continue
		}
		wants = append(wants, want{value: m.Value, rng: m.Range, app: true})
	}
	if len(wants) == 0 {
		return im, nil
	}
	policy, diags := imagePolicy(f, opts)
	if diags.HasErrors() {
		return nil, diags
	}
	store, err := oci.OpenStore(ctx, oci.DataDir(opts.DataDir, f.Agent.DataDir))
	if err != nil {
		return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot open the image store", Detail: err.Error(), Subject: rangePtr(wants[0].rng)})
	}
	defer store.Close()
	resolver := oci.NewResolver(store, policy)
	for _, w := range wants {
		ref, err := oci.ParseReference(w.value)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid image reference", Detail: err.Error(), Subject: rangePtr(w.rng)})
			continue
		}
		if w.app {
			img, err := resolver.WasmBPF(ctx, ref)
			if err != nil {
				diags = append(diags, imageDiag(err, w.rng))
				continue
			}
			im.apps[w.value] = img
			continue
		}
		if w.stage {
			img, err := resolver.Stage(ctx, ref)
			if err != nil {
				diags = append(diags, imageDiag(err, w.rng))
				continue
			}
			im.stages[w.value] = img
			continue
		}
		if _, done := im.gadgets[w.value]; done {
			continue // another source names the same image
		}
		img, err := resolver.Gadget(ctx, ref, "")
		if err != nil {
			diags = append(diags, imageDiag(err, w.rng))
			continue
		}
		im.gadgets[w.value] = img
	}
	return im, diags
}

// ImageKind fetches the image value names (under f's image policy, as
// FetchImages does) and says what kind it is: "gadget", "stage" or
// "wasm-bpf" (see oci.Resolver.Kind).
func ImageKind(ctx context.Context, f *config.File, value string, opts FetchOptions) (string, error) {
	policy, diags := imagePolicy(f, opts)
	if diags.HasErrors() {
		return "", diags
	}
	ref, err := oci.ParseReference(value)
	if err != nil {
		return "", err
	}
	store, err := oci.OpenStore(ctx, oci.DataDir(opts.DataDir, f.Agent.DataDir))
	if err != nil {
		return "", err
	}
	defer store.Close()
	return oci.NewResolver(store, policy).Kind(ctx, ref)
}

// imageDiag names what went wrong by the conclusive errors of oci and
// oci/sign.
func imageDiag(err error, rng hcl.Range) *hcl.Diagnostic {
	summary := "Cannot fetch image"
	var pe *oci.PolicyError
	switch {
	case errors.As(err, &pe):
		summary = "Image not allowed"
	case errors.Is(err, sign.ErrUnsigned), errors.Is(err, sign.ErrNoValidSignature):
		summary = "Image signature not valid"
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error(), Subject: rangePtr(rng)}
}

// imagePolicy turns the agent block's image settings into an oci.Policy,
// checking allow rules and reading public keys (relative to the config).
func imagePolicy(f *config.File, opts FetchOptions) (oci.Policy, hcl.Diagnostics) {
	cfg := f.Agent.Images
	var diags hcl.Diagnostics
	p := oci.Policy{
		Pull:   oci.PullPolicy(cfg.PullPolicy),
		Remote: oci.RemoteOptions{Insecure: cfg.InsecureRegistries, Progress: opts.Progress},
	}
	if opts.PullPolicy != "" {
		p.Pull = oci.PullPolicy(opts.PullPolicy)
	}
	for i, rule := range cfg.Allow {
		if err := oci.ValidateRule(rule); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid allow rule", Detail: err.Error(), Subject: rangeAt(cfg.AllowRanges, i)})
			continue
		}
		p.Allow = append(p.Allow, rule)
	}
	for i, path := range cfg.PublicKeys {
		full := path
		if fn := rangeAt(cfg.PublicKeysRanges, i); fn != nil && !filepath.IsAbs(path) && fn.Filename != "" && !strings.HasPrefix(fn.Filename, "<") {
			full = filepath.Join(filepath.Dir(fn.Filename), path)
		}
		data, err := os.ReadFile(full)
		var key *ecdsa.PublicKey
		if err == nil {
			key, err = sign.LoadPublicKey(data)
		}
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid public key", Detail: fmt.Sprintf("public key %s: %v", path, err), Subject: rangeAt(cfg.PublicKeysRanges, i)})
			continue
		}
		p.PublicKeys = append(p.PublicKeys, key)
	}
	return p, diags
}

func rangeAt(ranges []hcl.Range, i int) *hcl.Range {
	if i < len(ranges) {
		return rangePtr(ranges[i])
	}
	return nil
}

// newImageAccess is how the agent's stage followers fetch versions: the
// config's image policy, with the options images were fetched with (nil
// images: the defaults). Images follow the policy's pull setting; a
// progress callback is not used there.
func newImageAccess(f *config.File, images *Images) (*imageAccess, hcl.Diagnostics) {
	var opts FetchOptions
	if images != nil {
		opts = images.fetch
	}
	opts.Progress = nil
	policy, diags := imagePolicy(f, opts)
	if policy.Pull == "" {
		policy.Pull = oci.DefaultPullPolicy
	}
	return &imageAccess{policy: policy, dataDir: oci.DataDir(opts.DataDir, f.Agent.DataDir)}, diags
}

// resolveImageGadget returns the gadget an OCI value names, from images.
// The gadget's name is the repository's last element (trace_exec for
// localhost:5000/gadgets/trace_exec:v1), as for an ELF file's base name.
func resolveImageGadget(value string, images *Images) (string, *oci.GadgetImage, error) {
	img, ok := images.Gadget(value)
	if !ok {
		return "", nil, fmt.Errorf("gadget image %q was not fetched: the agent fetches images before it starts (agent.FetchImages)", value)
	}
	ref, err := oci.ParseReference(value)
	if err != nil {
		return "", nil, err
	}
	name := ref.Repository[strings.LastIndex(ref.Repository, "/")+1:]
	return name, img, nil
}
