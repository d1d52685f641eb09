package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
)

// Architectures gadget images are built for by default.
var DefaultArchs = []string{"amd64", "arm64"}

// File names in a gadget folder (see docs/oci.md, "Building").
const (
	ProgramSource = "program.bpf.c"
	// ProgramObject is a prebuilt object for amd64: the built-in gadgets
	// commit theirs, compiled with -D__TARGET_ARCH_x86.
	ProgramObject = "program.bpf.o"
	// WasmDir holds the source of the optional Wasm module (Go or C).
	WasmDir = "wasm"
)

// ProgramObjectFor is the name of a prebuilt object for one architecture:
// program.amd64.bpf.o, program.arm64.bpf.o.
func ProgramObjectFor(arch string) string { return "program." + arch + ".bpf.o" }

// BuildOptions control [Build].
type BuildOptions struct {
	// Archs are the architectures to build for; nil means DefaultArchs.
	Archs []string
	// Headers is the tree passed to clang with -I (sluice's gadget headers,
	// sluice/gadget.h and friends); needed only to compile program.bpf.c.
	Headers fs.FS
	// Created is the image's creation time; zero means SOURCE_DATE_EPOCH
	// when set, else the Unix epoch, so that equal inputs give equal digests.
	Created time.Time
	// CheckProgram, when set, validates each architecture's eBPF object
	// against the metadata before anything is written (the CLI parses the
	// ELF and checks that documented parameters exist).
	CheckProgram func(arch string, elf []byte, md *Metadata) error
	// Log receives one line per step; nil discards them.
	Log io.Writer
	// WasmBPF reports whether a module is a wasm-bpf application (package
	// wasmbpf knows by its imports); such a module, as a .wasm file or a
	// folder's, builds eunomia-bpf's Wasm layout instead of a stage image.
	// nil builds stage images only.
	WasmBPF func(module []byte) bool
	// Clang, Strip and Go name the tools; defaults clang-19, llvm-strip-19,
	// and the go on PATH (or /usr/local/go/bin/go).
	Clang, Strip, Go string
}

// BuildResult says what Build made.
type BuildResult struct {
	Desc ocispec.Descriptor
	Kind string // KindGadget, KindStage or KindWasmBPF
	// Inputs says, per architecture (or "wasm"), where the bytes came from:
	// "prebuilt program.bpf.o", "compiled program.bpf.c", "wasm/ (Go)".
	Inputs map[string]string
}

// Build makes an image from a gadget folder (or a stage folder: a folder
// with a Wasm module and no eBPF program, or a .wasm file) and tags it ref
// in the store. The same inputs give the same digest.
func Build(ctx context.Context, store *Store, dir string, ref Reference, opts BuildOptions) (*BuildResult, error) {
	b := &builder{store: store, dir: dir, opts: opts, res: &BuildResult{Inputs: map[string]string{}}}
	if b.opts.Log == nil {
		b.opts.Log = io.Discard
	}
	if b.opts.Clang == "" {
		b.opts.Clang = "clang-19"
	}
	if b.opts.Strip == "" {
		b.opts.Strip = "llvm-strip-19"
	}
	created, err := buildTime(opts.Created)
	if err != nil {
		return nil, err
	}
	b.created = created.UTC().Format(time.RFC3339)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	var desc ocispec.Descriptor
	switch {
	case !fi.IsDir() && strings.HasSuffix(dir, ".wasm"):
		desc, err = b.stageFromFile(ctx, dir)
	case !fi.IsDir():
		return nil, fmt.Errorf("build %s: not a folder or a .wasm module", dir)
	case b.hasProgram():
		desc, err = b.gadget(ctx)
	default:
		desc, err = b.stage(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", dir, err)
	}
	if err := store.Tag(ctx, desc, ref); err != nil {
		return nil, err
	}
	b.res.Desc = desc
	return b.res, nil
}

// buildTime honours SOURCE_DATE_EPOCH (reproducible-builds.org).
func buildTime(t time.Time) (time.Time, error) {
	if !t.IsZero() {
		return t, nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("build: SOURCE_DATE_EPOCH=%q: want seconds since the epoch", s)
		}
		return time.Unix(n, 0), nil
	}
	return time.Unix(0, 0), nil
}

type builder struct {
	store   *Store
	dir     string
	opts    BuildOptions
	created string
	res     *BuildResult
}

func (b *builder) logf(format string, args ...any) { fmt.Fprintf(b.opts.Log, format+"\n", args...) }

func (b *builder) exists(name string) bool {
	_, err := os.Stat(filepath.Join(b.dir, name))
	return err == nil
}

func (b *builder) hasProgram() bool {
	if b.exists(ProgramSource) || b.exists(ProgramObject) {
		return true
	}
	for _, a := range DefaultArchs {
		if b.exists(ProgramObjectFor(a)) {
			return true
		}
	}
	return false
}

func (b *builder) gadget(ctx context.Context) (ocispec.Descriptor, error) {
	md, mdBytes, err := b.metadata()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	archs := b.opts.Archs
	if len(archs) == 0 {
		archs = DefaultArchs
	}
	archs = slices.Clone(archs)
	slices.Sort(archs)
	objects := map[string][]byte{}
	for _, arch := range archs {
		obj, err := b.program(ctx, arch)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		if b.opts.CheckProgram != nil {
			if err := b.opts.CheckProgram(arch, obj, md); err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("%s object: %w", arch, err)
			}
		}
		objects[arch] = obj
	}
	wasm, err := b.wasm(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}

	annotations := annotationsFrom(md, b.created)
	config := content.NewDescriptorFromBytes(MediaTypeGadgetConfig, mdBytes)
	config.Annotations = annotations
	if err := b.push(ctx, config, mdBytes); err != nil {
		return ocispec.Descriptor{}, err
	}
	var wasmDesc *ocispec.Descriptor
	if wasm != nil {
		d := content.NewDescriptorFromBytes(MediaTypeGadgetWasm, wasm)
		if err := b.push(ctx, d, wasm); err != nil {
			return ocispec.Descriptor{}, err
		}
		wasmDesc = &d
	}
	var manifests []ocispec.Descriptor
	for _, arch := range archs {
		layer := content.NewDescriptorFromBytes(MediaTypeEBPF, objects[arch])
		if err := b.push(ctx, layer, objects[arch]); err != nil {
			return ocispec.Descriptor{}, err
		}
		m := ocispec.Manifest{
			Versioned:    specs.Versioned{SchemaVersion: 2},
			MediaType:    ocispec.MediaTypeImageManifest,
			ArtifactType: ArtifactTypeGadget,
			Config:       config,
			Layers:       []ocispec.Descriptor{layer},
			Annotations:  annotations,
		}
		if wasmDesc != nil {
			m.Layers = append(m.Layers, *wasmDesc)
		}
		desc, err := b.pushJSON(ctx, ocispec.MediaTypeImageManifest, m)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		desc.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		desc.Annotations = annotations
		desc.ArtifactType = ArtifactTypeGadget
		manifests = append(manifests, desc)
	}
	idx := ocispec.Index{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageIndex,
		Manifests:   manifests,
		Annotations: annotations,
	}
	desc, err := b.pushJSON(ctx, ocispec.MediaTypeImageIndex, idx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	b.res.Kind = KindGadget
	return desc, nil
}

// metadata reads gadget.yaml, or makes a minimal one naming the folder.
func (b *builder) metadata() (*Metadata, []byte, error) {
	raw, err := os.ReadFile(filepath.Join(b.dir, MetadataFile))
	if errors.Is(err, fs.ErrNotExist) {
		name := filepath.Base(filepath.Clean(b.dir))
		raw = []byte("name: " + strconv.Quote(name) + "\n")
		b.logf("metadata: no %s, using name %q", MetadataFile, name)
	} else if err != nil {
		return nil, nil, fmt.Errorf("read metadata: %w", err)
	}
	md, err := ParseMetadata(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", MetadataFile, err)
	}
	if md.Name == "" {
		return nil, nil, fmt.Errorf("%s: name is empty: a gadget names itself (name: trace_exec)", MetadataFile)
	}
	return md, raw, nil
}

func annotationsFrom(md *Metadata, created string) map[string]string {
	a := map[string]string{}
	for k, v := range md.Annotations {
		a[k] = v
	}
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	set(ocispec.AnnotationTitle, md.Name)
	set(ocispec.AnnotationDescription, md.Description)
	set(ocispec.AnnotationURL, md.HomepageURL)
	set(ocispec.AnnotationDocumentation, md.DocumentationURL)
	set(ocispec.AnnotationSource, md.SourceURL)
	a[ocispec.AnnotationCreated] = created
	a[AnnotationBuilder] = "sluice"
	return a
}

// program finds or compiles the eBPF object for arch.
func (b *builder) program(ctx context.Context, arch string) ([]byte, error) {
	if name := ProgramObjectFor(arch); b.exists(name) {
		b.res.Inputs[arch] = "prebuilt " + name
		b.logf("%s: prebuilt %s", arch, name)
		return os.ReadFile(filepath.Join(b.dir, name))
	}
	if arch == "amd64" && b.exists(ProgramObject) {
		b.res.Inputs[arch] = "prebuilt " + ProgramObject
		b.logf("%s: prebuilt %s", arch, ProgramObject)
		return os.ReadFile(filepath.Join(b.dir, ProgramObject))
	}
	if !b.exists(ProgramSource) {
		return nil, fmt.Errorf("no eBPF object for %s: add %s or %s, or build only the architectures you have (--arch)", arch, ProgramSource, ProgramObjectFor(arch))
	}
	obj, err := b.compileBPF(ctx, arch)
	if err != nil {
		return nil, err
	}
	b.res.Inputs[arch] = "compiled " + ProgramSource
	return obj, nil
}

var targetArch = map[string]string{"amd64": "x86", "arm64": "arm64"}

// compileBPF compiles program.bpf.c for arch in a scratch copy of the
// folder, with relative paths only, so that the object (whose BTF records
// file names) does not depend on where the folder lives.
func (b *builder) compileBPF(ctx context.Context, arch string) ([]byte, error) {
	ta, ok := targetArch[arch]
	if !ok {
		return nil, fmt.Errorf("compile %s: unknown architecture %q (want amd64 or arm64)", ProgramSource, arch)
	}
	for _, tool := range []string{b.opts.Clang, b.opts.Strip} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("no eBPF object for %s and %s is not installed to compile %s (apt-get install clang-19 llvm-19), or add %s, or build with --arch for the architectures you have objects for", arch, tool, ProgramSource, ProgramObjectFor(arch))
		}
	}
	work, err := os.MkdirTemp("", "sluice-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := copySources(b.dir, work); err != nil {
		return nil, err
	}
	args := []string{"-target", "bpfel", "-mcpu=v3", "-O2", "-g", "-fdebug-compilation-dir=.",
		"-D__TARGET_ARCH_" + ta, "-Wall", "-I", "."}
	if b.opts.Headers != nil {
		if err := os.CopyFS(filepath.Join(work, ".sluice-include"), b.opts.Headers); err != nil {
			return nil, fmt.Errorf("write gadget headers: %w", err)
		}
		args = append(args, "-I", ".sluice-include")
	}
	// -target bpf still needs <asm/types.h>; the host's copy will do.
	if asm := "/usr/include/" + multiarch[runtime.GOARCH]; multiarch[runtime.GOARCH] != "" {
		if _, err := os.Stat(asm); err == nil {
			args = append(args, "-I", asm)
		}
	}
	args = append(args, "-c", ProgramSource, "-o", "program.tmp.o")
	b.logf("%s: %s %s", arch, b.opts.Clang, strings.Join(args, " "))
	if err := run(ctx, work, nil, b.opts.Clang, args...); err != nil {
		return nil, fmt.Errorf("compile %s for %s: %w", ProgramSource, arch, err)
	}
	if err := run(ctx, work, nil, b.opts.Strip, "-g", "program.tmp.o", "-o", "program.o"); err != nil {
		return nil, fmt.Errorf("strip %s object: %w", arch, err)
	}
	return os.ReadFile(filepath.Join(work, "program.o"))
}

var multiarch = map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}

// copySources copies the C sources and headers of src (recursively, hidden
// folders and the wasm folder aside) into dst.
func copySources(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || rel == WasmDir) {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if ext := filepath.Ext(path); ext != ".c" && ext != ".h" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 4000 {
			msg = msg[:4000] + "..."
		}
		if msg != "" {
			return fmt.Errorf("%s: %w\n%s", name, err, msg)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// wasm finds or builds the folder's optional Wasm module: one *.wasm file
// at the top, or the source in wasm/ (Go when it has .go files, else C).
func (b *builder) wasm(ctx context.Context) ([]byte, error) {
	prebuilt, _ := filepath.Glob(filepath.Join(b.dir, "*.wasm"))
	if len(prebuilt) > 1 {
		return nil, fmt.Errorf("more than one Wasm module in the folder: %s", strings.Join(prebuilt, ", "))
	}
	if len(prebuilt) == 1 {
		data, err := os.ReadFile(prebuilt[0])
		if err != nil {
			return nil, err
		}
		if !isWasm(data) {
			return nil, fmt.Errorf("%s is not a Wasm module", prebuilt[0])
		}
		b.res.Inputs["wasm"] = "prebuilt " + filepath.Base(prebuilt[0])
		b.logf("wasm: prebuilt %s", filepath.Base(prebuilt[0]))
		return data, nil
	}
	src := filepath.Join(b.dir, WasmDir)
	if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
		return nil, nil
	}
	goFiles, _ := filepath.Glob(filepath.Join(src, "*.go"))
	cFiles, _ := filepath.Glob(filepath.Join(src, "*.c"))
	switch {
	case len(goFiles) > 0:
		return b.wasmFromGo(ctx, src)
	case len(cFiles) > 0:
		return b.wasmFromC(ctx, src, cFiles)
	}
	return nil, fmt.Errorf("%s/ has neither .go nor .c files", WasmDir)
}

func (b *builder) goTool() string {
	if b.opts.Go != "" {
		return b.opts.Go
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// wasmFromGo builds a Go stage with the standard toolchain, as the Go SDK
// documents: GOOS=wasip1 GOARCH=wasm -buildmode=c-shared. -trimpath and an
// empty build id keep the module independent of the machine.
func (b *builder) wasmFromGo(ctx context.Context, src string) ([]byte, error) {
	out, err := os.MkdirTemp("", "sluice-build-wasm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	target := filepath.Join(out, "module.wasm")
	args := []string{"build", "-buildmode=c-shared", "-trimpath", "-buildvcs=false", "-ldflags=-buildid=", "-o", target, "."}
	b.logf("wasm: GOOS=wasip1 GOARCH=wasm go %s (in %s)", strings.Join(args, " "), src)
	if err := run(ctx, src, []string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0"}, b.goTool(), args...); err != nil {
		return nil, fmt.Errorf("build the Wasm module from %s: %w", src, err)
	}
	b.res.Inputs["wasm"] = WasmDir + "/ (Go)"
	return os.ReadFile(target)
}

// wasmFromC builds a C stage with clang-19 for wasm32-wasip1 against
// Debian's wasi-libc (installed under the wasm32-wasi triple, which a
// scratch sysroot maps to the name clang-19 looks for).
func (b *builder) wasmFromC(ctx context.Context, src string, files []string) ([]byte, error) {
	if _, err := exec.LookPath(b.opts.Clang); err != nil {
		return nil, fmt.Errorf("build the Wasm module from %s: %s is not installed (apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32)", src, b.opts.Clang)
	}
	work, err := os.MkdirTemp("", "sluice-build-wasm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	for _, d := range []string{"include", "lib"} {
		if err := os.MkdirAll(filepath.Join(work, "sysroot", d), 0o755); err != nil {
			return nil, err
		}
	}
	os.Symlink("/usr/include/wasm32-wasi", filepath.Join(work, "sysroot", "include", "wasm32-wasip1"))
	os.Symlink("/usr/lib/wasm32-wasi", filepath.Join(work, "sysroot", "lib", "wasm32-wasip1"))
	args := []string{"--target=wasm32-wasip1", "--sysroot=" + filepath.Join(work, "sysroot"), "-mexec-model=reactor",
		"-O2", "-Wall", "-Wl,--strip-debug", "-o", filepath.Join(work, "module.wasm")}
	for _, f := range files {
		args = append(args, filepath.Base(f))
	}
	b.logf("wasm: %s %s", b.opts.Clang, strings.Join(args, " "))
	if err := run(ctx, src, nil, b.opts.Clang, args...); err != nil {
		return nil, fmt.Errorf("build the Wasm module from %s: %w", src, err)
	}
	b.res.Inputs["wasm"] = WasmDir + "/ (C)"
	return os.ReadFile(filepath.Join(work, "module.wasm"))
}

// stage builds a stage image from a folder without an eBPF program.
func (b *builder) stage(ctx context.Context) (ocispec.Descriptor, error) {
	wasm, err := b.wasm(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if wasm == nil {
		return ocispec.Descriptor{}, fmt.Errorf("nothing to build: no %s, %s, *.wasm or %s/ folder", ProgramSource, ProgramObject, WasmDir)
	}
	var md *Metadata
	if raw, err := os.ReadFile(filepath.Join(b.dir, MetadataFile)); err == nil {
		if md, err = ParseMetadata(raw); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s: %w", MetadataFile, err)
		}
	} else {
		md = &Metadata{Name: filepath.Base(filepath.Clean(b.dir))}
	}
	return b.stageImage(ctx, wasm, md)
}

func (b *builder) stageFromFile(ctx context.Context, path string) (ocispec.Descriptor, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if !isWasm(wasm) {
		return ocispec.Descriptor{}, fmt.Errorf("not a Wasm module")
	}
	b.res.Inputs["wasm"] = "prebuilt " + filepath.Base(path)
	return b.stageImage(ctx, wasm, &Metadata{Name: strings.TrimSuffix(filepath.Base(path), ".wasm")})
}

// wasmConfig is the CNCF Wasm OCI artifact config.
type wasmConfig struct {
	Created      string   `json:"created,omitempty"`
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	LayerDigests []string `json:"layerDigests"`
}

// stageImage writes a single-manifest image in the CNCF Wasm layout, or
// in eunomia's for a wasm-bpf application.
func (b *builder) stageImage(ctx context.Context, wasm []byte, md *Metadata) (ocispec.Descriptor, error) {
	if b.opts.WasmBPF != nil && b.opts.WasmBPF(wasm) {
		return b.wasmBPFImage(ctx, wasm, md)
	}
	cfg, err := json.Marshal(wasmConfig{Created: b.created, Architecture: "wasm", OS: "wasip1", LayerDigests: []string{content.NewDescriptorFromBytes(MediaTypeWasmLayer, wasm).Digest.String()}})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := b.singleLayerImage(ctx, MediaTypeWasmLayer, wasm, MediaTypeWasmConfig, cfg, md)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	b.res.Kind = KindStage
	return desc, nil
}

// wasmBPFImage writes a wasm-bpf application in the layout eunomia-bpf's
// tooling pushes and pulls: an image manifest whose config is
// application/vnd.wasm.config.v1+json ("{}") and whose one layer is the
// module, application/vnd.wasm.content.layer.v1+wasm.
func (b *builder) wasmBPFImage(ctx context.Context, wasm []byte, md *Metadata) (ocispec.Descriptor, error) {
	desc, err := b.singleLayerImage(ctx, MediaTypeWasmBPFLayer, wasm, MediaTypeWasmBPFConfig, []byte("{}"), md)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	b.res.Kind = KindWasmBPF
	return desc, nil
}

// singleLayerImage pushes an image manifest of one layer and its config.
func (b *builder) singleLayerImage(ctx context.Context, layerType string, layerData []byte, configType string, configData []byte, md *Metadata) (ocispec.Descriptor, error) {
	layer := content.NewDescriptorFromBytes(layerType, layerData)
	if err := b.push(ctx, layer, layerData); err != nil {
		return ocispec.Descriptor{}, err
	}
	config := content.NewDescriptorFromBytes(configType, configData)
	if err := b.push(ctx, config, configData); err != nil {
		return ocispec.Descriptor{}, err
	}
	return b.pushJSON(ctx, ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      config,
		Layers:      []ocispec.Descriptor{layer},
		Annotations: annotationsFrom(md, b.created),
	})
}

func (b *builder) push(ctx context.Context, desc ocispec.Descriptor, data []byte) error {
	err := b.store.layout.Push(ctx, desc, bytes.NewReader(data))
	if err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return fmt.Errorf("store %s: %w", desc.MediaType, err)
	}
	return nil
}

func (b *builder) pushJSON(ctx context.Context, mediaType string, v any) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := content.NewDescriptorFromBytes(mediaType, data)
	return desc, b.push(ctx, desc, data)
}
