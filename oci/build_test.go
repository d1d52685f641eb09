package oci_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/sources"
)

func openStore(t *testing.T) *oci.Store {
	t.Helper()
	s, err := oci.OpenStore(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustRef(t *testing.T, s string) oci.Reference {
	t.Helper()
	r, err := oci.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func haveClang() bool {
	_, err1 := exec.LookPath("clang-19")
	_, err2 := exec.LookPath("llvm-strip-19")
	return err1 == nil && err2 == nil
}

// checkWithSources validates objects the way the CLI does.
func checkWithSources(arch string, elf []byte, md *oci.Metadata) error {
	spec, err := sources.ParseGadget(md.Name, elf, sources.ParseOptions{})
	if err != nil {
		return err
	}
	for _, name := range md.ParamNames() {
		if err := spec.CheckParams(map[string]string{name: "0"}); err != nil && strings.Contains(err.Error(), "no such parameter") {
			return err
		}
	}
	return nil
}

// TestBuildBuiltins builds every built-in gadget's folder as it stands: the
// committed object is the amd64 layer byte for byte, arm64 is compiled from
// the source (when clang-19 is there; without it the error says so).
func TestBuildBuiltins(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	for _, b := range gadgets.Builtins() {
		t.Run(b.Name, func(t *testing.T) {
			dir := filepath.Join("..", "gadgets", b.Name)
			ref := mustRef(t, "localhost/builtin/"+b.Name+":test")
			archs := oci.DefaultArchs
			if !haveClang() {
				_, err := oci.Build(ctx, store, dir, ref, oci.BuildOptions{Headers: gadgets.Headers()})
				if err == nil || !strings.Contains(err.Error(), "clang-19 is not installed") {
					t.Fatalf("without clang-19, building arm64 should say clang-19 is missing; got %v", err)
				}
				archs = []string{"amd64"}
			}
			res, err := oci.Build(ctx, store, dir, ref, oci.BuildOptions{Archs: archs, Headers: gadgets.Headers(), CheckProgram: checkWithSources})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Inputs["amd64"]; got != "prebuilt program.bpf.o" {
				t.Errorf("amd64 input = %q, want the committed prebuilt object", got)
			}
			img, err := store.Gadget(ctx, res.Desc, "amd64")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(img.Program, b.Object) {
				t.Error("the amd64 eBPF layer differs from the embedded built-in object")
			}
			md, err := oci.ParseMetadata(img.Metadata)
			if err != nil || md.Name != b.Name {
				t.Errorf("metadata name = %v (%v), want %q", md, err, b.Name)
			}
			if img.Annotations[ocispec.AnnotationTitle] != b.Name || img.Annotations[ocispec.AnnotationDescription] != b.Description {
				t.Errorf("annotations = %v, want title and description from gadget.yaml", img.Annotations)
			}
			if haveClang() {
				arm, err := store.Gadget(ctx, res.Desc, "arm64")
				if err != nil {
					t.Fatal(err)
				}
				if res.Inputs["arm64"] != "compiled program.bpf.c" {
					t.Errorf("arm64 input = %q", res.Inputs["arm64"])
				}
				if _, err := sources.ParseGadget(b.Name, arm.Program, sources.ParseOptions{}); err != nil {
					t.Errorf("the arm64 object does not parse: %v", err)
				}
			}
		})
	}
}

// TestBuildReproducible builds the same folder twice (into two stores,
// from two copies at different paths) and gets the same digest; a changed
// SOURCE_DATE_EPOCH changes it.
func TestBuildReproducible(t *testing.T) {
	ctx := context.Background()
	archs := []string{"amd64", "arm64"}
	if !haveClang() {
		archs = []string{"amd64"}
	}
	src := filepath.Join("..", "gadgets", "trace_open")
	var digests []string
	for i := range 2 {
		dir := filepath.Join(t.TempDir(), "copy", strings.Repeat("x", i+1), "trace_open")
		if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		res, err := oci.Build(ctx, openStore(t), dir, mustRef(t, "localhost/r/trace_open:v1"), oci.BuildOptions{Archs: archs, Headers: gadgets.Headers()})
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, res.Desc.Digest.String())
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of the same inputs: %s and %s", digests[0], digests[1])
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	store := openStore(t)
	res, err := oci.Build(ctx, store, src, mustRef(t, "localhost/r/trace_open:v1"), oci.BuildOptions{Archs: archs, Headers: gadgets.Headers()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Desc.Digest.String() == digests[0] {
		t.Error("SOURCE_DATE_EPOCH did not change the digest")
	}
	img, err := store.Gadget(ctx, res.Desc, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Unix(1700000000, 0).UTC().Format(time.RFC3339)
	if got := img.Annotations[ocispec.AnnotationCreated]; got != want {
		t.Errorf("created = %q, want %q", got, want)
	}
}

// TestImageLayout checks the image against Inspektor Gadget's layout, by
// reading the raw JSON as another OCI tool would.
func TestImageLayout(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	dir := gadgetWithWasm(t)
	res, err := oci.Build(ctx, store, dir, mustRef(t, "localhost/l/g:v1"), oci.BuildOptions{Archs: []string{"amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	readJSON(t, store, res.Desc.Digest.Encoded(), &idx)
	if idx.MediaType != ocispec.MediaTypeImageIndex || len(idx.Manifests) != 1 {
		t.Fatalf("index = %+v", idx)
	}
	md := idx.Manifests[0]
	if md.Platform == nil || md.Platform.OS != "linux" || md.Platform.Architecture != "amd64" {
		t.Errorf("platform = %+v", md.Platform)
	}
	var m ocispec.Manifest
	readJSON(t, store, md.Digest.Encoded(), &m)
	if m.ArtifactType != oci.ArtifactTypeGadget || m.Config.MediaType != oci.MediaTypeGadgetConfig {
		t.Errorf("artifactType %q config %q", m.ArtifactType, m.Config.MediaType)
	}
	if len(m.Layers) != 2 || m.Layers[0].MediaType != oci.MediaTypeEBPF || m.Layers[1].MediaType != oci.MediaTypeGadgetWasm {
		t.Errorf("layers = %+v", m.Layers)
	}
	for _, k := range []string{ocispec.AnnotationTitle, ocispec.AnnotationDescription, ocispec.AnnotationCreated, ocispec.AnnotationSource} {
		if m.Annotations[k] == "" {
			t.Errorf("manifest lacks annotation %s: %v", k, m.Annotations)
		}
	}
	img, err := store.Gadget(ctx, res.Desc, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Wasm, testWasm) {
		t.Error("the Wasm layer is not the module that was built in")
	}
	if _, err := store.Gadget(ctx, res.Desc, "arm64"); !errors.Is(err, oci.ErrPlatform) || !strings.Contains(err.Error(), "no linux/arm64 manifest (it has linux/amd64)") {
		t.Errorf("arm64 from an amd64-only image: %v", err)
	}
}

func readJSON(t *testing.T, store *oci.Store, hex string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(store.Root(), "blobs", "sha256", hex))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// testWasm is the smallest valid module with one exported function.
var testWasm = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
	0x03, 0x02, 0x01, 0x00, // function section
	0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, // export "f"
	0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b} // code: empty body

// gadgetWithWasm is a gadget folder: trace_signal's object and metadata
// and a prebuilt Wasm module.
func gadgetWithWasm(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "g")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := gadgets.Lookup("trace_signal")
	md, err := os.ReadFile(filepath.Join("..", "gadgets", "trace_signal", oci.MetadataFile))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, oci.ProgramObject), b.Object)
	writeFile(t, filepath.Join(dir, oci.MetadataFile), md)
	writeFile(t, filepath.Join(dir, "program.wasm"), testWasm)
	return dir
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBuildStage builds a stage image from a .wasm file and from a folder
// with Go source, in the CNCF Wasm layout.
func TestBuildStage(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	path := filepath.Join(t.TempDir(), "drop.wasm")
	writeFile(t, path, testWasm)
	res, err := oci.Build(ctx, store, path, mustRef(t, "localhost/stages/drop:v1"), oci.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	readJSON(t, store, res.Desc.Digest.Encoded(), &m)
	if m.Config.MediaType != oci.MediaTypeWasmConfig || len(m.Layers) != 1 || m.Layers[0].MediaType != oci.MediaTypeWasmLayer {
		t.Fatalf("stage manifest = %+v", m)
	}
	img, err := store.Stage(ctx, res.Desc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Module, testWasm) {
		t.Error("stage module differs")
	}
	if _, err := store.Gadget(ctx, res.Desc, "amd64"); err == nil || !strings.Contains(err.Error(), "not a gadget image") {
		t.Errorf("a stage read as a gadget: %v", err)
	}

	// Go source in wasm/, built with the standard toolchain.
	dir := filepath.Join(t.TempDir(), "gostage")
	if err := os.MkdirAll(filepath.Join(dir, "wasm"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "wasm", "go.mod"), []byte("module example.com/stage\n\ngo 1.24\n"))
	writeFile(t, filepath.Join(dir, "wasm", "main.go"), []byte("package main\n\n//go:wasmexport answer\nfunc answer() int32 { return 42 }\n\nfunc main() {}\n"))
	var digests []string
	for range 2 {
		res, err := oci.Build(ctx, openStore(t), dir, mustRef(t, "localhost/stages/go:v1"), oci.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Kind != "stage" || res.Inputs["wasm"] != "wasm/ (Go)" {
			t.Errorf("result = %+v", res)
		}
		digests = append(digests, res.Desc.Digest.String())
	}
	if digests[0] != digests[1] {
		t.Errorf("the Go stage build is not reproducible: %v", digests)
	}
}

// BenchmarkStoreGadget is the start-up cost of reading a stored gadget
// image (index, manifest, metadata, layers, each digest-verified).
func BenchmarkStoreGadget(b *testing.B) {
	ctx := context.Background()
	store, err := oci.OpenStore(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ref, _ := oci.ParseReference("localhost/bench/trace_exec:v1")
	res, err := oci.Build(ctx, store, filepath.Join("..", "gadgets", "trace_exec"), ref, oci.BuildOptions{Archs: []string{"amd64"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.Gadget(ctx, res.Desc, "amd64"); err != nil {
			b.Fatal(err)
		}
	}
}
