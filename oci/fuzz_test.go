package oci_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/oci"
)

// FuzzImageReader feeds the store's image reader (the index and manifest
// decoding, the platform and layer selection, the config and layer reads
// and their checks, inspect and list) a top-level blob it did not write: an
// image pulled from a registry or imported from an archive is untrusted
// until it has been read. The store holds a real gadget image and a real
// stage image, so a blob that keeps their descriptors reaches the layers;
// the seeds are those images' own index and manifests. Whatever the blob,
// reading must end in an image that passed the checks or an error.
func FuzzImageReader(f *testing.F) {
	ctx := context.Background()
	store, err := oci.OpenStore(ctx, f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })

	// A gadget image (index -> manifest -> config, eBPF and Wasm layers)
	// and a stage image (manifest -> Wasm layer).
	dir := filepath.Join(f.TempDir(), "g")
	os.MkdirAll(dir, 0o755)
	b, _ := gadgets.Lookup("trace_signal")
	md, err := os.ReadFile(filepath.Join("..", "gadgets", "trace_signal", oci.MetadataFile))
	if err != nil {
		f.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, oci.ProgramObject), b.Object, 0o644)
	os.WriteFile(filepath.Join(dir, oci.MetadataFile), md, 0o644)
	os.WriteFile(filepath.Join(dir, "program.wasm"), testWasm, 0o644)
	gref, _ := oci.ParseReference("localhost/fuzz/gadget:v1")
	gres, err := oci.Build(ctx, store, dir, gref, oci.BuildOptions{Archs: []string{"amd64"}, Headers: gadgets.Headers()})
	if err != nil {
		f.Fatal(err)
	}
	wasmFile := filepath.Join(f.TempDir(), "stage.wasm")
	os.WriteFile(wasmFile, testWasm, 0o644)
	sref, _ := oci.ParseReference("localhost/fuzz/stage:v1")
	sres, err := oci.Build(ctx, store, wasmFile, sref, oci.BuildOptions{})
	if err != nil {
		f.Fatal(err)
	}
	seed := func(desc ocispec.Descriptor) []byte {
		b, err := content.FetchAll(ctx, store.Layout(), desc)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	gindex := seed(gres.Desc)
	var idx ocispec.Index
	if err := jsonUnmarshal(gindex, &idx); err != nil {
		f.Fatal(err)
	}
	mediaTypes := []string{"", ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, "application/vnd.docker.distribution.manifest.list.v2+json", "text/plain"}
	for i := range mediaTypes {
		f.Add(gindex, uint8(i))
		f.Add(seed(idx.Manifests[0]), uint8(i))
		f.Add(seed(sres.Desc), uint8(i))
	}
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":-1}]}`), uint8(1))
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.gadget.ebpf.program.v1+binary","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":99999999999}]}`), uint8(2))

	known := map[string]bool{}
	for _, d := range []ocispec.Descriptor{gres.Desc, idx.Manifests[0], sres.Desc} {
		known[d.Digest.String()] = true
	}
	ref, _ := oci.ParseReference("localhost/fuzz/input:v1")
	f.Fuzz(func(t *testing.T, blob []byte, mt uint8) {
		// Stored as plain bytes (the layout would parse a manifest to
		// index its graph), read under the fuzzed media type.
		raw := content.NewDescriptorFromBytes("application/octet-stream", blob)
		if err := store.Layout().Push(ctx, raw, bytes.NewReader(blob)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
			t.Fatal(err)
		}
		if !known[raw.Digest.String()] {
			// Keep the store to the two images: the fuzzer writes millions
			// of blobs.
			defer store.Layout().Delete(ctx, raw)
		}
		desc := raw
		desc.MediaType = mediaTypes[int(mt)%len(mediaTypes)]
		if img, err := store.Gadget(ctx, desc, "amd64"); err == nil {
			if !bytes.HasPrefix(img.Program, []byte("\x7fELF")) || (img.Wasm != nil && !bytes.HasPrefix(img.Wasm, []byte("\x00asm"))) {
				t.Fatalf("Gadget accepted an image whose layers are not what they claim")
			}
		}
		if img, err := store.Stage(ctx, desc); err == nil && !bytes.HasPrefix(img.Module, []byte("\x00asm")) {
			t.Fatalf("Stage accepted a module that is not Wasm")
		}
		if err := store.Tag(ctx, desc, ref); err != nil {
			t.Fatal(err)
		}
		store.Inspect(ctx, ref)
		store.List(ctx)
		store.Layout().Untag(ctx, ref.StoreKey())
	})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
