package oci

import (
	"context"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sluice-dev/sluice/oci/sign"
)

// Inspection is what `sluice image inspect` shows.
type Inspection struct {
	Ref         string               `json:"ref"`
	Digest      digest.Digest        `json:"digest"`
	MediaType   string               `json:"mediaType"`
	Annotations map[string]string    `json:"annotations,omitempty"`
	Metadata    *Metadata            `json:"metadata,omitempty"`
	Manifests   []InspectedManifest  `json:"manifests"`
	Signatures  []InspectedSignature `json:"signatures,omitempty"`
}

// InspectedManifest is one manifest of an image.
type InspectedManifest struct {
	Digest       digest.Digest        `json:"digest"`
	Platform     string               `json:"platform,omitempty"`
	ArtifactType string               `json:"artifactType,omitempty"`
	Config       ocispec.Descriptor   `json:"config"`
	Layers       []ocispec.Descriptor `json:"layers"`
}

// InspectedSignature is one signature manifest attached to the image.
type InspectedSignature struct {
	Layout   sign.Layout   `json:"layout"`
	Manifest digest.Digest `json:"manifest"`
}

// Inspect describes a stored image without checking its signatures.
func (s *Store) Inspect(ctx context.Context, ref Reference) (*Inspection, error) {
	desc, err := s.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	info := &Inspection{Ref: ref.String(), Digest: desc.Digest, MediaType: desc.MediaType}
	manifests := []ocispec.Descriptor{desc}
	if isIndex(desc.MediaType) {
		idx, err := s.readIndex(ctx, desc)
		if err != nil {
			return nil, err
		}
		info.Annotations = idx.Annotations
		manifests = idx.Manifests
	}
	for _, md := range manifests {
		m, err := s.readManifest(ctx, md)
		if err != nil {
			return nil, err
		}
		im := InspectedManifest{Digest: md.Digest, ArtifactType: m.ArtifactType, Config: m.Config, Layers: m.Layers}
		if md.Platform != nil {
			im.Platform = md.Platform.OS + "/" + md.Platform.Architecture
		}
		if info.Annotations == nil {
			info.Annotations = m.Annotations
		}
		if info.Metadata == nil && m.Config.MediaType == MediaTypeGadgetConfig {
			if cb, err := s.fetch(ctx, m.Config, maxMetadataBytes); err == nil {
				info.Metadata, _ = ParseMetadata(cb)
			}
		}
		info.Manifests = append(info.Manifests, im)
	}
	if d, err := s.layout.Resolve(ctx, ref.Name()+":"+sign.SignatureTag(desc.Digest)); err == nil {
		info.Signatures = append(info.Signatures, InspectedSignature{Layout: sign.LayoutTag, Manifest: d.Digest})
	}
	if refs, err := s.layout.Predecessors(ctx, desc); err == nil {
		for _, r := range refs {
			if r.ArtifactType == sign.ArtifactTypeSignature {
				info.Signatures = append(info.Signatures, InspectedSignature{Layout: sign.LayoutReferrers, Manifest: r.Digest})
			}
		}
	}
	return info, nil
}
