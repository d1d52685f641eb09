package oci

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	orasoci "oras.land/oras-go/v2/content/oci"
)

// Export writes refs (with their signatures) to w as a tar of an OCI image
// layout, which `sluice image import` and other OCI tools read. The archive
// is deterministic: the same images give the same bytes.
func (s *Store) Export(ctx context.Context, w io.Writer, refs []Reference) error {
	dir, err := os.MkdirTemp("", "sluice-export-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dst, err := orasoci.NewWithContext(ctx, dir)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, ref := range refs {
		desc, err := s.Resolve(ctx, ref)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if err := oras.CopyGraph(ctx, s.layout, dst, desc, oras.DefaultCopyGraphOptions); err != nil {
			return fmt.Errorf("export %s: %w", ref, err)
		}
		if err := dst.Tag(ctx, desc, ref.StoreKey()); err != nil {
			return fmt.Errorf("export %s: %w", ref, err)
		}
		if err := copySignatures(ctx, s.layout, ref.Name()+":", dst, ref.Name()+":", desc); err != nil {
			return fmt.Errorf("export signatures of %s: %w", ref, err)
		}
	}
	if err := sortIndex(filepath.Join(dir, ocispec.ImageIndexFile)); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return tarDir(dir, w)
}

// sortIndex orders index.json (oras writes it in map order).
func sortIndex(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return err
	}
	slices.SortFunc(idx.Manifests, func(a, b ocispec.Descriptor) int {
		if c := strings.Compare(a.Annotations[ocispec.AnnotationRefName], b.Annotations[ocispec.AnnotationRefName]); c != 0 {
			return c
		}
		return strings.Compare(a.Digest.String(), b.Digest.String())
	})
	if b, err = json.Marshal(idx); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// tarDir writes dir's regular files in name order with fixed metadata.
func tarDir(dir string, w io.Writer) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(files)
	tw := tar.NewWriter(w)
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// Import copies every named image of an OCI layout tar (made by Export or
// another tool) into the store and returns the names. Blobs are verified
// against their digests on the way in.
func (s *Store) Import(ctx context.Context, path string) ([]string, error) {
	src, err := orasoci.NewFromTar(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	var names []string
	err = src.Tags(ctx, "", func(tags []string) error {
		names = append(names, tags...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	var imported []string
	for _, name := range names {
		if strings.HasPrefix(name, "sha256:") {
			continue
		}
		desc, err := oras.Copy(ctx, src, name, s.layout, name, oras.DefaultCopyOptions)
		if err != nil {
			return imported, fmt.Errorf("import %s: %w", name, err)
		}
		// Referrers (OCI 1.1 signatures) are not tagged; bring them along.
		referrers, err := src.Predecessors(ctx, desc)
		if err != nil {
			return imported, fmt.Errorf("import %s: %w", name, err)
		}
		for _, r := range referrers {
			if err := oras.CopyGraph(ctx, src, s.layout, r, oras.DefaultCopyGraphOptions); err != nil {
				return imported, fmt.Errorf("import referrer of %s: %w", name, err)
			}
		}
		if !isSignatureTag(name) {
			imported = append(imported, name)
		}
	}
	return imported, nil
}
