package oci

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrBadStageImage marks an image StageAt fetched that is not a usable
// stage image (no Wasm layer, two of them, a layer that is no Wasm
// module): fetching it again gives the same answer.
var ErrBadStageImage = errors.New("not a stage image")

// ResolveRemote asks ref's registry what ref names now, with a HEAD
// request for its manifest: nothing is pulled. It is how a followed tag is
// polled. A reference pinned to a digest resolves to that digest without
// asking. A tag the registry does not have fails with ErrNotFound.
func ResolveRemote(ctx context.Context, ref Reference, opts RemoteOptions) (ocispec.Descriptor, error) {
	if ref.Digest != "" {
		return ocispec.Descriptor{Digest: ref.Digest}, nil
	}
	repo, err := opts.Repository(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := repo.Resolve(ctx, ref.Tag)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	return desc, nil
}

// StageAt fetches the stage image ref names at digest d (what a followed
// tag moved to) under the policy: the allow-list is asked about the name
// before anything is pulled and about the name, tag and digest after; the
// image is pulled by digest into the store, unless the pull policy is
// "never", which reads the store alone; the signature is verified when keys
// are configured. The store's tag is not moved (see TagStored): a version
// the agent refuses must not become what the next start runs.
func (r *Resolver) StageAt(ctx context.Context, ref Reference, d digest.Digest) (*StageImage, error) {
	pinned := Reference{Registry: ref.Registry, Repository: ref.Repository, Digest: d}
	if !r.policy.Allow.MayAllow(ref) {
		return nil, &PolicyError{Ref: ref, Digest: d, Rules: r.policy.Allow}
	}
	var desc ocispec.Descriptor
	var err error
	if r.policy.Pull == PullNever {
		desc, err = r.store.Resolve(ctx, pinned)
		if errors.Is(err, ErrNotFound) {
			err = fmt.Errorf("%w (pull policy \"never\": pull it with `sluice image pull %s`)", err, pinned)
		}
	} else {
		desc, err = Pull(ctx, r.store, pinned, r.policy.Remote)
	}
	if err != nil {
		return nil, err
	}
	// Following a tag, the registry says what the tag names now; the
	// store's tag is not moved until the version runs (TagStored).
	if err := r.policy.Allow.Allows(ref, desc.Digest, func(tag Reference) (digest.Digest, error) {
		return r.tagDigestAt(ctx, tag, r.policy.Pull != PullNever)
	}); err != nil {
		return nil, err
	}
	if len(r.policy.PublicKeys) > 0 {
		if _, err := r.Verify(ctx, ref.WithDigest(d), desc); err != nil {
			return nil, err
		}
	}
	img, err := r.store.Stage(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadStageImage, pinned, err)
	}
	if img.Module == nil {
		return nil, fmt.Errorf("%w: %s has no Wasm layer", ErrBadStageImage, pinned)
	}
	return img, nil
}

// TagStored names the stored image d ref (a tag), as a pull of ref would
// have: once a followed version runs, the next start finds it under the
// tag even offline.
func (r *Resolver) TagStored(ctx context.Context, ref Reference, d digest.Digest) error {
	if ref.Tag == "" {
		return nil
	}
	desc, err := r.store.Resolve(ctx, Reference{Registry: ref.Registry, Repository: ref.Repository, Digest: d})
	if err != nil {
		return err
	}
	return r.store.Tag(ctx, desc, Reference{Registry: ref.Registry, Repository: ref.Repository, Tag: ref.Tag})
}
