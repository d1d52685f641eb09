package sign

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
)

// Cosign's names.
const (
	// MediaTypeSimpleSigning is the media type of a signature layer.
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	// AnnotationSignature holds the base64 signature on the layer.
	AnnotationSignature = "dev.cosignproject.cosign/signature"
	// ArtifactTypeSignature is the config media type (hence the artifact
	// type) of a signature manifest in the OCI 1.1 referrers layout.
	ArtifactTypeSignature = "application/vnd.dev.cosign.artifact.sig.v1+json"
	// PayloadType is critical.type of a simple-signing payload.
	PayloadType = "cosign container image signature"
)

// Layout says where a signature is published.
type Layout string

const (
	// LayoutTag is cosign's default: a manifest tagged sha256-<hex>.sig in
	// the image's repository, one layer per signature.
	LayoutTag Layout = "tag"
	// LayoutReferrers is OCI 1.1: a manifest whose subject is the image.
	LayoutReferrers Layout = "referrers"
)

var (
	// ErrUnsigned reports an image with no signature in either layout.
	ErrUnsigned = errors.New("image is not signed")
	// ErrNoValidSignature reports signatures none of which holds.
	ErrNoValidSignature = errors.New("no valid signature")
)

// Target is where signatures live: a local OCI layout or a registry
// repository.
type Target interface {
	oras.Target
	content.PredecessorFinder
}

// Location is a Target and the prefix its tags carry: "" for a registry
// repository, "NAME:" in the local store, which keeps many repositories.
type Location struct {
	Target
	TagPrefix string
}

// SignatureTag is cosign's tag for the signatures of d: "sha256-<hex>.sig".
func SignatureTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded() + ".sig"
}

// IsSignatureArtifact tells whether a referrer may be a cosign signature
// (the artifact type is cosign's, or unknown and worth a look).
func IsSignatureArtifact(d ocispec.Descriptor) bool {
	return d.ArtifactType == ArtifactTypeSignature || d.ArtifactType == ""
}

// Payload is the simple-signing document cosign signs.
type Payload struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// NewPayload is the payload cosign makes for repository name (without tag)
// and manifest digest d.
func NewPayload(name string, d digest.Digest) ([]byte, error) {
	var p Payload
	p.Critical.Identity.DockerReference = name
	p.Critical.Image.DockerManifestDigest = d.String()
	p.Critical.Type = PayloadType
	return json.Marshal(p)
}

// SignPayload signs payload as cosign does: ECDSA over its SHA-256, ASN.1
// DER, base64 (standard encoding).
func SignPayload(key *ecdsa.PrivateKey, payload []byte) (string, error) {
	sum := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// VerifyPayload checks a base64 signature of payload with pub.
func VerifyPayload(pub *ecdsa.PublicKey, payload []byte, signature string) bool {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(payload)
	return ecdsa.VerifyASN1(pub, sum[:], sig)
}

// Sign signs subject (an image in loc, named name, a repository without
// tag) with key and publishes the signature in loc with layout. Signing
// twice with the tag layout appends a second signature, as cosign does.
func Sign(ctx context.Context, loc Location, name string, subject ocispec.Descriptor, key *ecdsa.PrivateKey, layout Layout) (ocispec.Descriptor, error) {
	payload, err := NewPayload(name, subject.Digest)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	sig, err := SignPayload(key, payload)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	layer := content.NewDescriptorFromBytes(MediaTypeSimpleSigning, payload)
	layer.Annotations = map[string]string{AnnotationSignature: sig}
	if err := pushBlob(ctx, loc, layer, payload); err != nil {
		return ocispec.Descriptor{}, err
	}
	switch layout {
	case LayoutTag, "":
		return signTag(ctx, loc, subject, layer)
	case LayoutReferrers:
		return signReferrer(ctx, loc, subject, layer)
	}
	return ocispec.Descriptor{}, fmt.Errorf("sign: unknown layout %q (want tag or referrers)", layout)
}

func signTag(ctx context.Context, loc Location, subject, layer ocispec.Descriptor) (ocispec.Descriptor, error) {
	tag := loc.TagPrefix + SignatureTag(subject.Digest)
	var layers []ocispec.Descriptor
	if desc, err := loc.Resolve(ctx, tag); err == nil {
		m, err := fetchManifest(ctx, loc, desc)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("read existing signatures: %w", err)
		}
		layers = m.Layers
	} else if !errors.Is(err, errdef.ErrNotFound) {
		return ocispec.Descriptor{}, fmt.Errorf("look up existing signatures: %w", err)
	}
	for _, l := range layers {
		if l.Digest == layer.Digest && l.Annotations[AnnotationSignature] == layer.Annotations[AnnotationSignature] {
			return ocispec.Descriptor{}, errors.New("sign: this signature is already attached")
		}
	}
	layers = append(layers, layer)
	m, err := signatureManifest(ctx, loc, ocispec.MediaTypeImageConfig, layers)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := pushManifest(ctx, loc, m, "")
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := loc.Tag(ctx, desc, tag); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("tag signature %s: %w", tag, err)
	}
	return desc, nil
}

func signReferrer(ctx context.Context, loc Location, subject, layer ocispec.Descriptor) (ocispec.Descriptor, error) {
	m, err := signatureManifest(ctx, loc, ArtifactTypeSignature, []ocispec.Descriptor{layer})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	m.Subject = &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	return pushManifest(ctx, loc, m, ArtifactTypeSignature)
}

// imageConfig is the config cosign's signature images carry (an empty
// go-containerregistry image with one rootfs entry per signature layer).
type imageConfig struct {
	Architecture string `json:"architecture"`
	Created      string `json:"created"`
	History      []struct {
		Created string `json:"created"`
	} `json:"history"`
	OS     string `json:"os"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	Config struct{} `json:"config"`
}

func signatureManifest(ctx context.Context, loc Location, configMediaType string, layers []ocispec.Descriptor) (ocispec.Manifest, error) {
	var cfg imageConfig
	const zeroTime = "0001-01-01T00:00:00Z"
	cfg.Created = zeroTime
	cfg.RootFS.Type = "layers"
	for _, l := range layers {
		cfg.History = append(cfg.History, struct {
			Created string `json:"created"`
		}{zeroTime})
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest.String())
	}
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		return ocispec.Manifest{}, err
	}
	cfgDesc := content.NewDescriptorFromBytes(configMediaType, cfgBytes)
	if err := pushBlob(ctx, loc, cfgDesc, cfgBytes); err != nil {
		return ocispec.Manifest{}, err
	}
	return ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    layers,
	}, nil
}

func pushBlob(ctx context.Context, t Target, desc ocispec.Descriptor, data []byte) error {
	if err := t.Push(ctx, desc, bytes.NewReader(data)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return fmt.Errorf("push %s: %w", desc.MediaType, err)
	}
	return nil
}

func pushManifest(ctx context.Context, t Target, m ocispec.Manifest, artifactType string) (ocispec.Descriptor, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, data)
	desc.ArtifactType = artifactType
	return desc, pushBlob(ctx, t, desc, data)
}

func fetchManifest(ctx context.Context, t Target, desc ocispec.Descriptor) (*ocispec.Manifest, error) {
	if desc.Size > 4<<20 {
		return nil, fmt.Errorf("signature manifest %s is too large (%d bytes)", desc.Digest, desc.Size)
	}
	b, err := content.FetchAll(ctx, t, desc)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode signature manifest %s: %w", desc.Digest, err)
	}
	return &m, nil
}

// Verified says which signature held.
type Verified struct {
	Key             string // fingerprint of the public key
	DockerReference string // the name the signer signed
	Layout          Layout
}

// Verify checks that subject carries at least one signature, in either
// layout, made by one of keys over a payload that names subject's digest.
func Verify(ctx context.Context, loc Location, subject ocispec.Descriptor, keys []*ecdsa.PublicKey) (*Verified, error) {
	if len(keys) == 0 {
		return nil, errors.New("verify: no public keys")
	}
	type candidate struct {
		layer  ocispec.Descriptor
		layout Layout
	}
	var candidates []candidate
	if desc, err := loc.Resolve(ctx, loc.TagPrefix+SignatureTag(subject.Digest)); err == nil {
		m, err := fetchManifest(ctx, loc, desc)
		if err != nil {
			return nil, fmt.Errorf("verify: read signatures: %w", err)
		}
		for _, l := range m.Layers {
			candidates = append(candidates, candidate{l, LayoutTag})
		}
	} else if !errors.Is(err, errdef.ErrNotFound) {
		return nil, fmt.Errorf("verify: look up signatures: %w", err)
	}
	referrers, err := loc.Predecessors(ctx, subject)
	if err != nil && !errors.Is(err, errdef.ErrNotFound) && !errors.Is(err, errdef.ErrUnsupported) {
		return nil, fmt.Errorf("verify: list referrers: %w", err)
	}
	for _, r := range referrers {
		if !IsSignatureArtifact(r) || (r.MediaType != ocispec.MediaTypeImageManifest && r.MediaType != "") {
			continue
		}
		m, err := fetchManifest(ctx, loc, r)
		if err != nil {
			return nil, fmt.Errorf("verify: read referrer: %w", err)
		}
		if m.Config.MediaType != ArtifactTypeSignature && m.ArtifactType != ArtifactTypeSignature {
			continue
		}
		for _, l := range m.Layers {
			candidates = append(candidates, candidate{l, LayoutReferrers})
		}
	}
	var reasons []string
	for _, c := range candidates {
		if c.layer.MediaType != MediaTypeSimpleSigning {
			continue
		}
		sig := c.layer.Annotations[AnnotationSignature]
		if sig == "" {
			reasons = append(reasons, fmt.Sprintf("layer %s has no %s annotation", c.layer.Digest.Encoded()[:12], AnnotationSignature))
			continue
		}
		if c.layer.Size > 1<<20 {
			reasons = append(reasons, fmt.Sprintf("payload %s is too large", c.layer.Digest.Encoded()[:12]))
			continue
		}
		payload, err := content.FetchAll(ctx, loc, c.layer)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("payload %s: %v", c.layer.Digest.Encoded()[:12], err))
			continue
		}
		var signer *ecdsa.PublicKey
		for _, k := range keys {
			if VerifyPayload(k, payload, sig) {
				signer = k
				break
			}
		}
		if signer == nil {
			reasons = append(reasons, fmt.Sprintf("a %s signature does not verify with the given keys", c.layout))
			continue
		}
		// Read the payload only once its signature holds.
		var p Payload
		if err := json.Unmarshal(payload, &p); err != nil {
			reasons = append(reasons, fmt.Sprintf("a signed payload does not decode: %v", err))
			continue
		}
		if p.Critical.Type != PayloadType {
			reasons = append(reasons, fmt.Sprintf("a signed payload has type %q, not %q", p.Critical.Type, PayloadType))
			continue
		}
		if p.Critical.Image.DockerManifestDigest != subject.Digest.String() {
			reasons = append(reasons, fmt.Sprintf("a signature is for %s, not %s", p.Critical.Image.DockerManifestDigest, subject.Digest))
			continue
		}
		return &Verified{Key: Fingerprint(signer), DockerReference: p.Critical.Identity.DockerReference, Layout: c.layout}, nil
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("%s has no signature (no %s tag, no signature referrer): %w", subject.Digest, SignatureTag(subject.Digest), ErrUnsigned)
	}
	fps := make([]string, len(keys))
	for i, k := range keys {
		fps[i] = Fingerprint(k)
	}
	return nil, fmt.Errorf("%s: %d signature(s), none valid for keys %s (%s): %w", subject.Digest, len(candidates), strings.Join(fps, ", "), strings.Join(reasons, "; "), ErrNoValidSignature)
}
