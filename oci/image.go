package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrPlatform reports an image without a manifest for the wanted
// architecture.
var ErrPlatform = errors.New("no manifest for this architecture")

// The kinds of image sluice builds and runs, as build results and stored
// images report them.
const (
	KindGadget  = "gadget"   // an eBPF ELF layer, perhaps with a Wasm module
	KindStage   = "stage"    // a Wasm stage module
	KindWasmBPF = "wasm-bpf" // a wasm-bpf application, in eunomia's layout
)

// HostArch is the architecture gadget manifests are selected for: the Go
// name of the machine's (amd64, arm64).
var HostArch = runtime.GOARCH

// GadgetImage is what a gadget image holds for one architecture.
type GadgetImage struct {
	// Digest is what the reference resolved to (usually an index).
	Digest digest.Digest
	// Manifest is the digest of the selected architecture's manifest.
	Manifest digest.Digest
	Arch     string
	// Metadata is the config blob: gadget.yaml. Empty when the image has
	// the empty config.
	Metadata []byte
	// Program is the eBPF ELF object.
	Program []byte
	// Wasm is the gadget's Wasm module, nil when it has none. It runs with
	// the gadget's lifecycle (see docs/oci.md).
	Wasm []byte
	// Annotations are the manifest's annotations (org.opencontainers.image.*).
	Annotations map[string]string
}

// StageImage is a Wasm stage image: the module and where it came from.
type StageImage struct {
	Digest   digest.Digest
	Manifest digest.Digest
	Module   []byte
	// Annotations are the manifest's annotations.
	Annotations map[string]string
}

// Gadget reads the gadget image desc for arch from the store, verifying
// every blob's digest.
func (s *Store) Gadget(ctx context.Context, desc ocispec.Descriptor, arch string) (*GadgetImage, error) {
	md, m, err := s.selectManifest(ctx, desc, arch, isGadgetManifest)
	if err != nil {
		return nil, err
	}
	img := &GadgetImage{Digest: desc.Digest, Manifest: md.Digest, Arch: arch, Annotations: m.Annotations}
	switch m.Config.MediaType {
	case MediaTypeGadgetConfig:
		if img.Metadata, err = s.fetch(ctx, m.Config, maxMetadataBytes); err != nil {
			return nil, fmt.Errorf("read gadget metadata: %w", err)
		}
	case ocispec.MediaTypeEmptyJSON:
	default:
		return nil, fmt.Errorf("gadget manifest %s: config media type %q: want %s", md.Digest, m.Config.MediaType, MediaTypeGadgetConfig)
	}
	for _, l := range m.Layers {
		switch l.MediaType {
		case MediaTypeEBPF:
			if img.Program != nil {
				return nil, fmt.Errorf("gadget manifest %s has more than one eBPF layer", md.Digest)
			}
			if img.Program, err = s.fetch(ctx, l, maxLayerBytes); err != nil {
				return nil, fmt.Errorf("read eBPF layer: %w", err)
			}
			if !bytes.HasPrefix(img.Program, []byte("\x7fELF")) {
				return nil, fmt.Errorf("gadget manifest %s: the eBPF layer %s is not an ELF object", md.Digest, l.Digest)
			}
		case MediaTypeGadgetWasm:
			if img.Wasm != nil {
				return nil, fmt.Errorf("gadget manifest %s has more than one Wasm layer", md.Digest)
			}
			if img.Wasm, err = s.fetch(ctx, l, maxLayerBytes); err != nil {
				return nil, fmt.Errorf("read Wasm layer: %w", err)
			}
			if !isWasm(img.Wasm) {
				return nil, fmt.Errorf("gadget manifest %s: the Wasm layer %s is not a Wasm module", md.Digest, l.Digest)
			}
		case MediaTypeBTFGen:
			// BTF for kernels without it; sluice requires kernel BTF.
		default:
			return nil, fmt.Errorf("gadget manifest %s: unknown layer media type %q", md.Digest, l.MediaType)
		}
	}
	if img.Program == nil {
		return nil, fmt.Errorf("gadget manifest %s has no eBPF layer (%s)", md.Digest, MediaTypeEBPF)
	}
	return img, nil
}

// Stage reads a Wasm stage image from the store. It accepts the CNCF Wasm
// artifact layout (config application/vnd.wasm.config.v0+json, one
// application/wasm layer) and a manifest whose one Wasm layer has the gadget
// Wasm media type; an index is searched for such a manifest.
func (s *Store) Stage(ctx context.Context, desc ocispec.Descriptor) (*StageImage, error) {
	md, m, err := s.selectManifest(ctx, desc, "", isStageManifest)
	if err != nil {
		return nil, err
	}
	img := &StageImage{Digest: desc.Digest, Manifest: md.Digest, Annotations: m.Annotations}
	for _, l := range m.Layers {
		if l.MediaType != MediaTypeWasmLayer && l.MediaType != MediaTypeGadgetWasm {
			continue
		}
		if img.Module != nil {
			return nil, fmt.Errorf("stage manifest %s has more than one Wasm layer", md.Digest)
		}
		if img.Module, err = s.fetch(ctx, l, maxLayerBytes); err != nil {
			return nil, fmt.Errorf("read Wasm layer: %w", err)
		}
		if !isWasm(img.Module) {
			return nil, fmt.Errorf("stage manifest %s: layer %s is not a Wasm module", md.Digest, l.Digest)
		}
	}
	return img, nil
}

// WasmBPFImage is a wasm-bpf application's image: the module.
type WasmBPFImage struct {
	Digest   digest.Digest
	Manifest digest.Digest
	Module   []byte
	// Annotations are the manifest's annotations.
	Annotations map[string]string
}

// WasmBPF reads a wasm-bpf application image from the store: eunomia's
// layout (config application/vnd.wasm.config.v1+json, one
// application/vnd.wasm.content.layer.v1+wasm layer, as ecli and
// wasm-to-oci push it), or a module in the CNCF Wasm layout (what a stage
// image holds), for applications pushed by tools that write that one.
// Whether the module is a wasm-bpf application is the caller's to check.
func (s *Store) WasmBPF(ctx context.Context, desc ocispec.Descriptor) (*WasmBPFImage, error) {
	md, m, err := s.selectManifest(ctx, desc, "", isWasmBPFManifest)
	if err != nil {
		return nil, err
	}
	img := &WasmBPFImage{Digest: desc.Digest, Manifest: md.Digest, Annotations: m.Annotations}
	for _, l := range m.Layers {
		if l.MediaType != MediaTypeWasmBPFLayer && l.MediaType != MediaTypeWasmLayer {
			continue
		}
		if img.Module != nil {
			return nil, fmt.Errorf("wasm-bpf manifest %s has more than one Wasm layer", md.Digest)
		}
		if img.Module, err = s.fetch(ctx, l, maxLayerBytes); err != nil {
			return nil, fmt.Errorf("read Wasm layer: %w", err)
		}
		if !isWasm(img.Module) {
			return nil, fmt.Errorf("wasm-bpf manifest %s: layer %s is not a Wasm module", md.Digest, l.Digest)
		}
	}
	return img, nil
}

func isWasmBPFManifest(m *ocispec.Manifest) bool {
	if k := kindOf(m); k != KindWasmBPF && k != KindStage {
		return false
	}
	return slices.ContainsFunc(m.Layers, func(l ocispec.Descriptor) bool {
		return l.MediaType == MediaTypeWasmBPFLayer || l.MediaType == MediaTypeWasmLayer
	})
}

func isWasm(b []byte) bool { return bytes.HasPrefix(b, []byte("\x00asm")) }

func isGadgetManifest(m *ocispec.Manifest) bool { return kindOf(m) == KindGadget }

func isStageManifest(m *ocispec.Manifest) bool {
	if kindOf(m) != KindStage {
		return false
	}
	n := 0
	for _, l := range m.Layers {
		if l.MediaType == MediaTypeWasmLayer || l.MediaType == MediaTypeGadgetWasm {
			n++
		}
	}
	return n >= 1
}

// selectManifest returns the manifest desc stands for: desc itself when it
// is a manifest, or, in an index, the linux manifest for arch (any manifest
// that fits when arch is "").
func (s *Store) selectManifest(ctx context.Context, desc ocispec.Descriptor, arch string, fits func(*ocispec.Manifest) bool) (ocispec.Descriptor, *ocispec.Manifest, error) {
	b, err := s.fetch(ctx, desc, maxMetadataBytes)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	mediaType := desc.MediaType
	if mediaType == "" {
		var probe struct {
			MediaType string `json:"mediaType"`
		}
		json.Unmarshal(b, &probe)
		mediaType = probe.MediaType
	}
	switch {
	case isManifest(mediaType):
		m, err := decodeManifest(b, desc.Digest)
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		if !fits(m) {
			return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s is not a %s image (layers: %s)", desc.Digest, wantKind(fits), layerTypes(m))
		}
		return desc, m, nil
	case isIndex(mediaType):
		idx, err := decodeIndex(b, desc.Digest)
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		var have []string
		for _, md := range idx.Manifests {
			if md.Platform != nil {
				have = append(have, md.Platform.OS+"/"+md.Platform.Architecture)
			}
			if arch != "" && (md.Platform == nil || md.Platform.Architecture != arch || (md.Platform.OS != "linux" && md.Platform.OS != "")) {
				continue
			}
			m, err := s.readManifest(ctx, md)
			if err != nil {
				return ocispec.Descriptor{}, nil, err
			}
			if fits(m) {
				return md, m, nil
			}
		}
		if arch != "" {
			return ocispec.Descriptor{}, nil, fmt.Errorf("image %s has no linux/%s manifest (it has %s): %w", desc.Digest, arch, strings.Join(have, ", "), ErrPlatform)
		}
		return ocispec.Descriptor{}, nil, fmt.Errorf("index %s has no %s manifest", desc.Digest, wantKind(fits))
	}
	return ocispec.Descriptor{}, nil, fmt.Errorf("%s: media type %q is neither an image manifest nor an index", desc.Digest, mediaType)
}

func wantKind(fits func(*ocispec.Manifest) bool) string {
	switch {
	case fits(&ocispec.Manifest{Layers: []ocispec.Descriptor{{MediaType: MediaTypeEBPF}}}):
		return KindGadget
	case fits(&ocispec.Manifest{Layers: []ocispec.Descriptor{{MediaType: MediaTypeWasmBPFLayer}}}):
		return KindWasmBPF
	}
	return "Wasm stage"
}

func layerTypes(m *ocispec.Manifest) string {
	var ts []string
	for _, l := range m.Layers {
		ts = append(ts, l.MediaType)
	}
	if len(ts) == 0 {
		return "none"
	}
	return strings.Join(ts, ", ")
}
