package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
	"oras.land/oras-go/v2/content"
	orasoci "oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/errdef"

	"github.com/sluice-dev/sluice/oci/sign"
)

// ErrNotFound reports an image that is not in the store (or registry).
var ErrNotFound = errdef.ErrNotFound

// DefaultDataDir is where the store lives when neither the config, the
// --data-dir flag nor SLUICE_DATA_DIR says otherwise.
const DefaultDataDir = "/var/lib/sluice"

// DataDirEnv names the environment variable that overrides the data dir.
const DataDirEnv = "SLUICE_DATA_DIR"

// DataDir is the data dir the store lives in: override (a --data-dir flag)
// when set, else $SLUICE_DATA_DIR, else configured (the config's data_dir;
// "" where there is no config), else DefaultDataDir. The CLI's image
// commands and the agent both pick it this way.
func DataDir(override, configured string) string {
	for _, d := range []string{override, os.Getenv(DataDirEnv), configured} {
		if d != "" {
			return d
		}
	}
	return DefaultDataDir
}

// maxMetadataBytes bounds manifests, indexes and configs read into memory.
const maxMetadataBytes = 4 << 20

// maxLayerBytes bounds a layer read into memory (eBPF objects and Wasm
// modules are kilobytes to a few megabytes).
const maxLayerBytes = 256 << 20

// Store is the local image store: an OCI image layout in DIR/images, where
// DIR is the data dir. Open it with [OpenStore] and Close it when done; it
// holds an exclusive advisory lock on DIR/images.lock meanwhile, so that
// two processes never rewrite index.json at once. A Store is safe for
// concurrent use within the process.
type Store struct {
	root   string
	layout *orasoci.Store
	lock   *os.File

	// pulls counts the pulls in progress; a failed one leaves ingest
	// files behind (below), swept once no pull is running.
	mu         sync.Mutex
	pulls      int
	dirtyPulls bool
}

// StoreDir is the layout directory under a data dir.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "images") }

// OpenStore opens (creating when needed) the store under dataDir, waiting
// for another process's lock until ctx is done.
func OpenStore(ctx context.Context, dataDir string) (*Store, error) {
	root := StoreDir(dataDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	lock, err := os.OpenFile(root+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open image store lock: %w", err)
	}
	if err := flock(ctx, lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock image store %s: %w", root, err)
	}
	layout, err := orasoci.NewWithContext(ctx, root)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open image store %s: %w", root, err)
	}
	s := &Store{root: root, layout: layout, lock: lock}
	// What a process that died mid-pull left behind: nobody else writes
	// while the lock is held.
	s.sweepIngest()
	return s, nil
}

// ingestDir is where the layout writes a blob before it is verified and
// moved into blobs/.
func (s *Store) ingestDir() string { return filepath.Join(s.root, "ingest") }

// sweepIngest removes the layout's temporary files. oras-go removes a
// failed ingest's file with a path its own return statement has already
// cleared, so every blob that fails (a digest mismatch, a dropped
// connection) stays in ingest/ otherwise; a Store holds the lock, so no
// other process is writing there, and it runs only while no pull of this
// process is (beginPull, endPull).
func (s *Store) sweepIngest() {
	entries, err := os.ReadDir(s.ingestDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		os.RemoveAll(filepath.Join(s.ingestDir(), e.Name()))
	}
}

// beginPull and endPull bracket a pull; the last pull to end after one
// failed sweeps the ingest folder.
func (s *Store) beginPull() {
	s.mu.Lock()
	s.pulls++
	s.mu.Unlock()
}

func (s *Store) endPull(failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulls--
	s.dirtyPulls = s.dirtyPulls || failed
	if s.pulls == 0 && s.dirtyPulls {
		s.dirtyPulls = false
		s.sweepIngest()
	}
}

// flock takes an exclusive lock on f, polling so that ctx can end the wait.
func flock(ctx context.Context, f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("held by another sluice process: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close releases the store's lock.
func (s *Store) Close() error {
	return s.lock.Close()
}

// Root is the layout directory.
func (s *Store) Root() string { return s.root }

// Layout is the underlying OCI layout, for copying with oras.
func (s *Store) Layout() *orasoci.Store { return s.layout }

// Resolve finds what ref names in the store. A digest-pinned reference
// resolves only to content the store holds under ref's name (pulled or
// tagged as that repository, or a manifest of an index so held): content
// is addressed by digest, but a name must not reach another repository's
// image that happens to be in the store, which would let a reference under
// an allowed name run anything ever pulled (ErrNotFound, so that a pull
// policy that may pull asks the registry, which knows what the repository
// holds). A tag is resolved through the name the store recorded.
func (s *Store) Resolve(ctx context.Context, ref Reference) (ocispec.Descriptor, error) {
	if ref.Digest != "" {
		desc, err := s.layout.Resolve(ctx, ref.Digest.String())
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("image %s is not in the local store: %w", ref, ErrNotFound)
		}
		known, err := s.heldUnder(ctx, ref.Name(), ref.Digest)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("resolve %s in the local store: %w", ref, err)
		}
		if !known {
			return ocispec.Descriptor{}, fmt.Errorf("image %s is not in the local store under the name %s (its digest is, under another name): %w", ref, ref.Name(), ErrNotFound)
		}
		return desc, nil
	}
	desc, err := s.layout.Resolve(ctx, ref.StoreKey())
	if err != nil {
		if errors.Is(err, errdef.ErrNotFound) {
			return ocispec.Descriptor{}, fmt.Errorf("image %s is not in the local store: %w", ref, ErrNotFound)
		}
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s in the local store: %w", ref, err)
	}
	return desc, nil
}

// heldUnder reports whether the store records d under name: a tag or
// digest key of name pointing at d, or at an index that lists d.
func (s *Store) heldUnder(ctx context.Context, name string, d digest.Digest) (bool, error) {
	var keys []string
	err := s.layout.Tags(ctx, "", func(tags []string) error {
		for _, t := range tags {
			rest, ok := strings.CutPrefix(t, name)
			if ok && (strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, "@")) && !isSignatureTag(t) {
				keys = append(keys, t)
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("list images: %w", err)
	}
	for _, k := range keys {
		desc, err := s.layout.Resolve(ctx, k)
		if err != nil {
			continue
		}
		if desc.Digest == d {
			return true, nil
		}
		if isIndex(desc.MediaType) {
			idx, err := s.readIndex(ctx, desc)
			if err != nil {
				continue
			}
			for _, m := range idx.Manifests {
				if m.Digest == d {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// Tag names desc ref in the store.
func (s *Store) Tag(ctx context.Context, desc ocispec.Descriptor, ref Reference) error {
	if err := s.layout.Tag(ctx, desc, ref.StoreKey()); err != nil {
		return fmt.Errorf("tag %s: %w", ref, err)
	}
	return nil
}

// fetch reads a blob whole, verifying its size and digest: a tampered blob
// is an error here, never bytes.
func (s *Store) fetch(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	return fetchVerified(ctx, s.layout, desc, limit)
}

func fetchVerified(ctx context.Context, f content.Fetcher, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("blob %s is %d bytes, more than the %d allowed", desc.Digest, desc.Size, limit)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("blob %s has a negative size", desc.Digest)
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("read blob %s (%s): %w", desc.Digest, desc.MediaType, err)
	}
	defer rc.Close()
	// A descriptor's size is the manifest's claim; reading allocates it
	// up front. A local blob's real size is known: a manifest naming a
	// small blob as hundreds of MiB must not cost that much memory to
	// refuse.
	if st, ok := rc.(interface{ Stat() (os.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil && fi.Size() != desc.Size {
			return nil, fmt.Errorf("read blob %s (%s): the descriptor says %d bytes, the blob has %d: %w", desc.Digest, desc.MediaType, desc.Size, fi.Size(), errdef.ErrSizeExceedsLimit)
		}
	}
	b, err := content.ReadAll(rc, desc)
	if err != nil {
		return nil, fmt.Errorf("read blob %s (%s): %w", desc.Digest, desc.MediaType, err)
	}
	return b, nil
}

// readManifest reads and decodes the image manifest md.
func (s *Store) readManifest(ctx context.Context, md ocispec.Descriptor) (*ocispec.Manifest, error) {
	b, err := s.fetch(ctx, md, maxMetadataBytes)
	if err != nil {
		return nil, err
	}
	return decodeManifest(b, md.Digest)
}

func decodeManifest(b []byte, d digest.Digest) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode manifest %s: %w", d, err)
	}
	return &m, nil
}

// readIndex reads and decodes the image index desc.
func (s *Store) readIndex(ctx context.Context, desc ocispec.Descriptor) (*ocispec.Index, error) {
	b, err := s.fetch(ctx, desc, maxMetadataBytes)
	if err != nil {
		return nil, err
	}
	return decodeIndex(b, desc.Digest)
}

func decodeIndex(b []byte, d digest.Digest) (*ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("decode index %s: %w", d, err)
	}
	return &idx, nil
}

// Image is one named image in the store, as `sluice image list` shows it.
type Image struct {
	Ref       string // the name it is stored under
	Digest    digest.Digest
	MediaType string
	Kind      string // KindGadget, KindStage, KindWasmBPF or "" (something else)
	Archs     []string
	Created   string
	Size      int64 // bytes of the manifests' blobs, shared blobs counted once per image
}

// List returns every named image, sorted by name. Signature tags
// (sha256-<hex>.sig) are not images and are left out.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	var names []string
	err := s.layout.Tags(ctx, "", func(tags []string) error {
		names = append(names, tags...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var out []Image
	for _, name := range names {
		if strings.HasPrefix(name, "sha256:") || isSignatureTag(name) {
			continue
		}
		desc, err := s.layout.Resolve(ctx, name)
		if err != nil {
			continue
		}
		img := Image{Ref: name, Digest: desc.Digest, MediaType: desc.MediaType}
		s.describe(ctx, desc, &img)
		out = append(out, img)
	}
	slices.SortFunc(out, func(a, b Image) int { return strings.Compare(a.Ref, b.Ref) })
	return out, nil
}

// describe fills what List shows beyond the name; an unreadable image keeps
// an empty kind rather than failing the whole listing.
func (s *Store) describe(ctx context.Context, desc ocispec.Descriptor, img *Image) {
	manifests := []ocispec.Descriptor{desc}
	if isIndex(desc.MediaType) {
		idx, err := s.readIndex(ctx, desc)
		if err != nil {
			return
		}
		img.Created = idx.Annotations[ocispec.AnnotationCreated]
		img.Size = desc.Size
		manifests = idx.Manifests
	}
	for _, md := range manifests {
		m, err := s.readManifest(ctx, md)
		if err != nil {
			continue
		}
		if img.Created == "" {
			img.Created = m.Annotations[ocispec.AnnotationCreated]
		}
		img.Size += md.Size + m.Config.Size
		for _, l := range m.Layers {
			img.Size += l.Size
		}
		if img.Kind == "" {
			img.Kind = kindOf(m)
		}
		if md.Platform != nil {
			img.Archs = append(img.Archs, md.Platform.Architecture)
		}
	}
	slices.Sort(img.Archs)
}

// kindOf tells gadget, stage and wasm-bpf manifests apart by their layers.
func kindOf(m *ocispec.Manifest) string {
	hasEBPF, hasWasm, hasWasmBPF := false, false, false
	for _, l := range m.Layers {
		switch l.MediaType {
		case MediaTypeEBPF:
			hasEBPF = true
		case MediaTypeGadgetWasm, MediaTypeWasmLayer:
			hasWasm = true
		case MediaTypeWasmBPFLayer:
			hasWasmBPF = true
		}
	}
	switch {
	case hasEBPF:
		return KindGadget
	case hasWasmBPF:
		return KindWasmBPF
	case hasWasm:
		return KindStage
	}
	return ""
}

// Remove deletes the name ref. The content goes too (with the signatures
// that refer to it) unless another name still points at the same digest.
func (s *Store) Remove(ctx context.Context, ref Reference) error {
	desc, err := s.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	if ref.Tag != "" {
		if err := s.layout.Untag(ctx, ref.StoreKey()); err != nil {
			return fmt.Errorf("remove %s: %w", ref, err)
		}
	}
	shared := false
	err = s.layout.Tags(ctx, "", func(tags []string) error {
		for _, t := range tags {
			if strings.HasPrefix(t, "sha256:") || isSignatureTag(t) {
				continue
			}
			if d, err := s.layout.Resolve(ctx, t); err == nil && d.Digest == desc.Digest {
				shared = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove %s: %w", ref, err)
	}
	if shared {
		return nil
	}
	// Signatures in the tag layout name the image's digest.
	sigTag := ref.Name() + ":" + sign.SignatureTag(desc.Digest)
	if _, err := s.layout.Resolve(ctx, sigTag); err == nil {
		if err := s.layout.Untag(ctx, sigTag); err != nil {
			return fmt.Errorf("remove signatures of %s: %w", ref, err)
		}
	}
	if err := s.layout.Delete(ctx, desc); err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return fmt.Errorf("remove %s: %w", ref, err)
	}
	if err := s.layout.GC(ctx); err != nil {
		return fmt.Errorf("remove %s: collect unreferenced blobs: %w", ref, err)
	}
	return nil
}

func isSignatureTag(name string) bool {
	i := strings.LastIndex(name, ":")
	return i >= 0 && strings.HasSuffix(name, ".sig") && strings.HasPrefix(name[i+1:], "sha256-")
}

func isIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == "application/vnd.docker.distribution.manifest.list.v2+json"
}

func isManifest(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageManifest || mediaType == "application/vnd.docker.distribution.manifest.v2+json"
}
