package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/sluice-dev/sluice/oci/sign"
)

// RemoteOptions say how to reach registries.
type RemoteOptions struct {
	// Insecure lists registries (host or host:port) reached over plain
	// HTTP. localhost and loopback addresses always are.
	Insecure []string
	// PlainHTTP reaches every registry over plain HTTP.
	PlainHTTP bool
	// Credentials is where logins are kept; nil means the docker config
	// (~/.docker/config.json, or $DOCKER_CONFIG/config.json) and the
	// credential helpers it names.
	Credentials credentials.Store
	// Progress, when set, is told about every blob a copy moves. It is
	// called from the copy's goroutines, concurrently: it must be safe for
	// concurrent use.
	Progress func(ProgressEvent)
}

// ProgressEvent reports on one blob of a push or pull.
type ProgressEvent struct {
	Digest    string
	MediaType string
	Total     int64
	Done      int64
	// State is "start", "progress", "done" or "exists" (skipped: the
	// destination already has it).
	State string
}

// DockerCredentials opens the docker config's credential store.
func DockerCredentials() (credentials.Store, error) {
	s, err := credentials.NewStoreFromDocker(credentials.StoreOptions{AllowPlaintextPut: true, DetectDefaultNativeStore: true})
	if err != nil {
		return nil, fmt.Errorf("open docker credentials: %w", err)
	}
	return s, nil
}

// plainHTTP tells whether host is reached without TLS.
func (o RemoteOptions) plainHTTP(host string) bool {
	if o.PlainHTTP || slices.Contains(o.Insecure, host) {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (o RemoteOptions) client() (*auth.Client, error) {
	store := o.Credentials
	if store == nil {
		var err error
		if store, err = DockerCredentials(); err != nil {
			return nil, err
		}
	}
	return &auth.Client{
		Client:     retry.DefaultClient,
		Cache:      auth.NewCache(),
		Credential: credentials.Credential(store),
		Header:     map[string][]string{"User-Agent": {"sluice"}},
	}, nil
}

// Repository returns the registry repository ref names.
func (o RemoteOptions) Repository(ref Reference) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Name())
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", ref.Name(), err)
	}
	repo.PlainHTTP = o.plainHTTP(ref.Registry)
	if repo.Client, err = o.client(); err != nil {
		return nil, err
	}
	return repo, nil
}

// Registry returns a client of one registry, for login.
func (o RemoteOptions) Registry(host string) (*remote.Registry, error) {
	reg, err := remote.NewRegistry(host)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", host, err)
	}
	reg.PlainHTTP = o.plainHTTP(host)
	if reg.Client, err = o.client(); err != nil {
		return nil, err
	}
	return reg, nil
}

// Login checks the credential against the registry and saves it in the
// credential store.
func Login(ctx context.Context, host string, cred auth.Credential, opts RemoteOptions) error {
	reg, err := opts.Registry(host)
	if err != nil {
		return err
	}
	store := opts.Credentials
	if store == nil {
		if store, err = DockerCredentials(); err != nil {
			return err
		}
	}
	if err := credentials.Login(ctx, store, reg, cred); err != nil {
		return fmt.Errorf("login to %s: %w", host, err)
	}
	return nil
}

// Logout removes the saved credential of host.
func Logout(ctx context.Context, host string, opts RemoteOptions) error {
	store := opts.Credentials
	if store == nil {
		var err error
		if store, err = DockerCredentials(); err != nil {
			return err
		}
	}
	if err := credentials.Logout(ctx, store, host); err != nil {
		return fmt.Errorf("logout from %s: %w", host, err)
	}
	return nil
}

// Pull copies ref from its registry into the store, with the cosign
// signatures attached to it (tag layout and OCI 1.1 referrers), and returns
// the descriptor it resolved to. Every blob is checked against its digest
// before the store keeps it.
func Pull(ctx context.Context, store *Store, ref Reference, opts RemoteOptions) (desc ocispec.Descriptor, err error) {
	store.beginPull()
	defer func() { store.endPull(err != nil) }()
	repo, err := opts.Repository(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	src := progressSource{ReadOnlyTarget: repo, report: opts.Progress}
	desc, err = oras.Copy(ctx, src, ref.RemoteRef(), store.layout, ref.StoreKey(), copyOptions(opts))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	if ref.Digest != "" && desc.Digest != ref.Digest {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: the registry answered with %s", ref, desc.Digest)
	}
	if err := copySignatures(ctx, repo, "", store.layout, ref.Name()+":", desc); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull signatures of %s: %w", ref, err)
	}
	return desc, nil
}

// Push copies ref from the store to its registry, with its signatures.
func Push(ctx context.Context, store *Store, ref Reference, opts RemoteOptions) (ocispec.Descriptor, error) {
	desc, err := store.Resolve(ctx, ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	repo, err := opts.Repository(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	src := progressSource{ReadOnlyTarget: store.layout, report: opts.Progress}
	if err := oras.CopyGraph(ctx, src, repo, desc, copyOptions(opts).CopyGraphOptions); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
	}
	if ref.Tag != "" {
		if err := repo.Tag(ctx, desc, ref.Tag); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: tag: %w", ref, err)
		}
	}
	if err := copySignatures(ctx, store.layout, ref.Name()+":", repo, "", desc); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push signatures of %s: %w", ref, err)
	}
	return desc, nil
}

// PushSignatures copies the signatures of ref (already in the registry)
// from the store to the registry.
func PushSignatures(ctx context.Context, store *Store, ref Reference, opts RemoteOptions) error {
	desc, err := store.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	repo, err := opts.Repository(ref)
	if err != nil {
		return err
	}
	if err := copySignatures(ctx, store.layout, ref.Name()+":", repo, "", desc); err != nil {
		return fmt.Errorf("push signatures of %s: %w", ref, err)
	}
	return nil
}

type graphTarget interface {
	oras.Target
	content.PredecessorFinder
}

// copySignatures copies subject's cosign signatures: the manifest tagged
// sha256-<hex>.sig and the referrers whose artifact type is cosign's.
// Tags are prefixed (the local store names tags NAME:TAG, a registry
// repository just TAG).
func copySignatures(ctx context.Context, src graphTarget, srcPrefix string, dst oras.Target, dstPrefix string, subject ocispec.Descriptor) error {
	tag := sign.SignatureTag(subject.Digest)
	_, err := oras.Copy(ctx, src, srcPrefix+tag, dst, dstPrefix+tag, oras.DefaultCopyOptions)
	if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return fmt.Errorf("copy %s: %w", tag, err)
	}
	referrers, err := src.Predecessors(ctx, subject)
	if err != nil {
		if errors.Is(err, errdef.ErrNotFound) || errors.Is(err, errdef.ErrUnsupported) {
			return nil
		}
		return fmt.Errorf("list referrers: %w", err)
	}
	for _, r := range referrers {
		if !sign.IsSignatureArtifact(r) {
			continue
		}
		if err := oras.CopyGraph(ctx, src, dst, r, oras.DefaultCopyGraphOptions); err != nil {
			return fmt.Errorf("copy referrer %s: %w", r.Digest, err)
		}
	}
	return nil
}

func copyOptions(opts RemoteOptions) oras.CopyOptions {
	co := oras.DefaultCopyOptions
	if opts.Progress != nil {
		co.OnCopySkipped = func(_ context.Context, d ocispec.Descriptor) error {
			opts.Progress(ProgressEvent{Digest: d.Digest.String(), MediaType: d.MediaType, Total: d.Size, Done: d.Size, State: "exists"})
			return nil
		}
	}
	return co
}

// progressSource reports the bytes read from each blob.
type progressSource struct {
	oras.ReadOnlyTarget
	report func(ProgressEvent)
}

func (p progressSource) Predecessors(ctx context.Context, node ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if f, ok := p.ReadOnlyTarget.(content.PredecessorFinder); ok {
		return f.Predecessors(ctx, node)
	}
	return nil, errdef.ErrUnsupported
}

func (p progressSource) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := p.ReadOnlyTarget.Fetch(ctx, d)
	if err != nil || p.report == nil {
		return rc, err
	}
	ev := ProgressEvent{Digest: d.Digest.String(), MediaType: d.MediaType, Total: d.Size, State: "start"}
	p.report(ev)
	return &progressReader{rc: rc, ev: ev, report: p.report}, nil
}

type progressReader struct {
	rc     io.ReadCloser
	ev     ProgressEvent
	report func(ProgressEvent)
	once   sync.Once
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.rc.Read(b)
	if n > 0 {
		r.ev.Done += int64(n)
		r.ev.State = "progress"
		r.report(r.ev)
	}
	if err == io.EOF {
		r.finish()
	}
	return n, err
}

func (r *progressReader) Close() error {
	r.finish()
	return r.rc.Close()
}

func (r *progressReader) finish() {
	r.once.Do(func() {
		r.ev.State = "done"
		r.report(r.ev)
	})
}
