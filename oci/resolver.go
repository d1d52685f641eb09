package oci

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sluice-dev/sluice/oci/sign"
)

// PullPolicy says when an image is fetched from its registry.
type PullPolicy string

const (
	// PullAlways asks the registry every time (a moved tag is followed).
	PullAlways PullPolicy = "always"
	// PullMissing uses the store's copy and pulls only what it lacks.
	PullMissing PullPolicy = "missing"
	// PullNever uses the store alone.
	PullNever PullPolicy = "never"
)

// PullPolicies lists the valid policies.
var PullPolicies = []string{string(PullAlways), string(PullMissing), string(PullNever)}

// DefaultPullPolicy is the agent's default.
const DefaultPullPolicy = PullMissing

// Policy is what an agent requires of the images it runs.
type Policy struct {
	Pull  PullPolicy
	Allow AllowList
	// PublicKeys, when not empty, makes a valid cosign signature by one of
	// them a condition of running an image.
	PublicKeys []*ecdsa.PublicKey
	Remote     RemoteOptions
}

// Resolver finds images for the agent under its policy. It is safe for
// concurrent use as far as its Store is.
type Resolver struct {
	store  *Store
	policy Policy
}

// NewResolver returns a resolver reading and writing store.
func NewResolver(store *Store, policy Policy) *Resolver {
	if policy.Pull == "" {
		policy.Pull = DefaultPullPolicy
	}
	return &Resolver{store: store, policy: policy}
}

// Resolve makes ref available in the store (pulling as the pull policy
// says), then checks the allow-list and, when keys are configured, the
// signature. Checks run on the store's copy, so they work offline.
func (r *Resolver) Resolve(ctx context.Context, ref Reference) (ocispec.Descriptor, error) {
	if !r.policy.Allow.MayAllow(ref) {
		return ocispec.Descriptor{}, &PolicyError{Ref: ref, Rules: r.policy.Allow}
	}
	var desc ocispec.Descriptor
	var err error
	switch r.policy.Pull {
	case PullAlways:
		desc, err = Pull(ctx, r.store, ref, r.policy.Remote)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%w (pull policy \"always\"; with \"missing\" the local copy would be used)", err)
		}
	case PullMissing:
		desc, err = r.store.Resolve(ctx, ref)
		if errors.Is(err, ErrNotFound) {
			desc, err = Pull(ctx, r.store, ref, r.policy.Remote)
		}
	case PullNever:
		desc, err = r.store.Resolve(ctx, ref)
		if errors.Is(err, ErrNotFound) {
			err = fmt.Errorf("%w (pull policy \"never\": pull it with `sluice image pull %s`)", err, ref)
		}
	default:
		return ocispec.Descriptor{}, fmt.Errorf("unknown pull policy %q (want %v)", r.policy.Pull, PullPolicies)
	}
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := r.policy.Allow.Allows(ref, desc.Digest, func(tag Reference) (digest.Digest, error) {
		return r.tagDigest(ctx, tag)
	}); err != nil {
		return ocispec.Descriptor{}, err
	}
	if len(r.policy.PublicKeys) > 0 {
		if _, err := r.Verify(ctx, ref, desc); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	return desc, nil
}

// tagDigest is the digest a tag of a tag rule names: the registry's answer
// under pull policy "always", the store's record otherwise, and the
// registry's when the store has no record and the policy may pull.
func (r *Resolver) tagDigest(ctx context.Context, tag Reference) (digest.Digest, error) {
	return r.tagDigestAt(ctx, tag, r.policy.Pull == PullAlways)
}

// tagDigestAt is tagDigest, asking the registry first when remote is set.
func (r *Resolver) tagDigestAt(ctx context.Context, tag Reference, remote bool) (digest.Digest, error) {
	if !remote {
		desc, err := r.store.Resolve(ctx, tag)
		if err == nil {
			return desc.Digest, nil
		}
		if !errors.Is(err, ErrNotFound) || r.policy.Pull == PullNever {
			return "", err
		}
	}
	repo, err := r.policy.Remote.Repository(tag)
	if err != nil {
		return "", err
	}
	desc, err := repo.Resolve(ctx, tag.Tag)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", tag, err)
	}
	return desc.Digest, nil
}

// Verify checks desc's signature in the store against the policy's keys.
func (r *Resolver) Verify(ctx context.Context, ref Reference, desc ocispec.Descriptor) (*sign.Verified, error) {
	v, err := VerifyStored(ctx, r.store, ref, desc, r.policy.PublicKeys)
	if err != nil {
		return nil, fmt.Errorf("refuse image %s: %w", ref, err)
	}
	return v, nil
}

// VerifyStored checks the signatures the store holds for desc (pulled with
// the image, or made by `sluice image sign`).
func VerifyStored(ctx context.Context, store *Store, ref Reference, desc ocispec.Descriptor, keys []*ecdsa.PublicKey) (*sign.Verified, error) {
	return sign.Verify(ctx, sign.Location{Target: store.layout, TagPrefix: ref.Name() + ":"}, desc, keys)
}

// Gadget resolves ref and reads its gadget image for arch ("" = the host's).
func (r *Resolver) Gadget(ctx context.Context, ref Reference, arch string) (*GadgetImage, error) {
	desc, err := r.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	if arch == "" {
		arch = HostArch
	}
	img, err := r.store.Gadget(ctx, desc, arch)
	if err != nil {
		return nil, fmt.Errorf("gadget image %s: %w", ref, err)
	}
	return img, nil
}

// Stage resolves ref and reads its Wasm module.
func (r *Resolver) Stage(ctx context.Context, ref Reference) (*StageImage, error) {
	desc, err := r.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	img, err := r.store.Stage(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("stage image %s: %w", ref, err)
	}
	return img, nil
}

// Kind resolves ref (under the policy, as every read does) and says what
// kind of image it is: "gadget", "stage", "wasm-bpf", or "" for none of
// them. `sluice run REF` runs a gadget or an application by it.
func (r *Resolver) Kind(ctx context.Context, ref Reference) (string, error) {
	desc, err := r.Resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	var img Image
	r.store.describe(ctx, desc, &img)
	return img.Kind, nil
}

// WasmBPF resolves ref and reads its wasm-bpf application module.
func (r *Resolver) WasmBPF(ctx context.Context, ref Reference) (*WasmBPFImage, error) {
	desc, err := r.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	img, err := r.store.WasmBPF(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("wasm-bpf image %s: %w", ref, err)
	}
	return img, nil
}

// SignStored signs desc in the store (see [sign.Sign]).
func SignStored(ctx context.Context, store *Store, ref Reference, desc ocispec.Descriptor, key *ecdsa.PrivateKey, layout sign.Layout) (ocispec.Descriptor, error) {
	return sign.Sign(ctx, sign.Location{Target: store.layout, TagPrefix: ref.Name() + ":"}, ref.Name(), desc, key, layout)
}
