package oci_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/wasmbpf"
)

// TestBuildWasmBPF builds a wasm-bpf application into eunomia-bpf's Wasm
// layout (config application/vnd.wasm.config.v1+json "{}", one
// application/vnd.wasm.content.layer.v1+wasm layer), reproducibly; it
// reads back as a wasm-bpf image, lists as one, and is no stage; a stage
// module still builds a stage image with the same options.
func TestBuildWasmBPF(t *testing.T) {
	ctx := context.Background()
	app, err := os.ReadFile(filepath.Join("..", "wasmbpf", "testdata", "execsnoop.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "execsnoop.wasm")
	writeFile(t, path, app)
	opts := oci.BuildOptions{WasmBPF: wasmbpf.IsWasmBPF}
	store := openStore(t)
	ref := mustRef(t, "localhost/apps/execsnoop:v1")
	res, err := oci.Build(ctx, store, path, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != "wasm-bpf" {
		t.Errorf("kind = %q; want wasm-bpf", res.Kind)
	}
	var m ocispec.Manifest
	readJSON(t, store, res.Desc.Digest.Encoded(), &m)
	if m.MediaType != ocispec.MediaTypeImageManifest || m.Config.MediaType != oci.MediaTypeWasmBPFConfig ||
		len(m.Layers) != 1 || m.Layers[0].MediaType != oci.MediaTypeWasmBPFLayer {
		t.Fatalf("manifest = %+v", m)
	}
	var cfg map[string]any
	readJSON(t, store, m.Config.Digest.Encoded(), &cfg)
	if len(cfg) != 0 {
		t.Errorf("config = %v; want {}", cfg)
	}
	if m.Annotations[ocispec.AnnotationTitle] != "execsnoop" {
		t.Errorf("annotations = %v", m.Annotations)
	}
	img, err := store.WasmBPF(ctx, res.Desc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Module, app) {
		t.Error("the module read back differs")
	}
	if _, err := store.Stage(ctx, res.Desc); err == nil || !strings.Contains(err.Error(), "not a Wasm stage image") {
		t.Errorf("a wasm-bpf image read as a stage: %v", err)
	}
	list, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Kind != "wasm-bpf" {
		t.Errorf("list = %+v", list)
	}
	again, err := oci.Build(ctx, openStore(t), path, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Desc.Digest != res.Desc.Digest {
		t.Errorf("not reproducible: %s, then %s", res.Desc.Digest, again.Desc.Digest)
	}

	stagePath := filepath.Join(t.TempDir(), "drop.wasm")
	writeFile(t, stagePath, testWasm)
	st, err := oci.Build(ctx, store, stagePath, mustRef(t, "localhost/stages/drop:v1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Kind != "stage" {
		t.Errorf("a stage module built a %q image", st.Kind)
	}
	// A wasm-bpf module someone pushed in the CNCF layout (as a stage
	// image is built) still reads as a wasm-bpf application.
	cncf, err := oci.Build(ctx, store, path, mustRef(t, "localhost/apps/cncf:v1"), oci.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img, err := store.WasmBPF(ctx, cncf.Desc); err != nil || !bytes.Equal(img.Module, app) {
		t.Errorf("the CNCF layout did not read as a wasm-bpf image: %v", err)
	}
}
