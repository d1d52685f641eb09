package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/oci/sign"
	"github.com/sluice-dev/sluice/wasmstages"
)

// pushBuiltin builds a built-in gadget's folder (amd64 and, with clang-19,
// arm64) into a scratch store and pushes it to reg.
func pushBuiltin(t *testing.T, reg *registrytest.Registry, name, tag string) (oci.Reference, *oci.Store) {
	t.Helper()
	ctx := context.Background()
	store, err := oci.OpenStore(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ref, err := oci.ParseReference(reg.Host + "/gadgets/" + name + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oci.Build(ctx, store, filepath.Join("..", "gadgets", name), ref, oci.BuildOptions{Archs: []string{oci.HostArch}, Headers: gadgets.Headers()}); err != nil {
		t.Fatal(err)
	}
	if _, err := oci.Push(ctx, store, ref, oci.RemoteOptions{Credentials: credentials.NewMemoryStore()}); err != nil {
		t.Fatal(err)
	}
	return ref, store
}

func imageConfig(t *testing.T, ref, agentExtra string) *config.File {
	t.Helper()
	src := fmt.Sprintf(`
agent {
  name           = "oci-host"
  shutdown_grace = "5s"
  %s
}
source "gadget" "exec" { gadget = %q }
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
  queue { when_full = "drop_oldest" }
}
`, agentExtra, ref)
	return parseFile(t, t.TempDir(), src)
}

// runUntilExec runs the agent until a marked exec shows up in its output.
func runUntilExec(t *testing.T, f *config.File, images *Images) string {
	t.Helper()
	ta := startAgent(t, f, Options{Images: images})
	ta.waitForExec("sluice-oci")
	return ta.stop()
}

// TestGadgetImageRoundTrip: build -> push -> the agent pulls the image on
// demand and loads its eBPF layer into the kernel; an exec shows up. Then,
// with the registry stopped, the same config runs from the local store.
func TestGadgetImageRoundTrip(t *testing.T) {
	testutil.RequireBPF(t)
	reg := registrytest.Start(t, registrytest.Options{})
	ref, _ := pushBuiltin(t, reg, "trace_exec", "v1")
	dataDir := t.TempDir()
	f := imageConfig(t, ref.String(), fmt.Sprintf("data_dir = %q", dataDir))
	ctx := context.Background()
	images, diags := FetchImages(ctx, f, FetchOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	out := runUntilExec(t, f, images)
	for _, want := range []string{`"gadget":"trace_exec"`, `"source":"exec"`, `"comm":"true"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s", want)
		}
	}

	reg.Stop()
	images, diags = FetchImages(ctx, imageConfig(t, ref.String(), fmt.Sprintf("data_dir = %q\npull_policy = \"never\"", dataDir)), FetchOptions{})
	if diags.HasErrors() {
		t.Fatalf("offline: %v", diags)
	}
	runUntilExec(t, f, images)
	// A digest-pinned reference runs offline too: the store is addressed by digest.
	pinned := ref.Name() + "@" + images.gadgets[ref.String()].Digest.String()
	pf := imageConfig(t, pinned, fmt.Sprintf("data_dir = %q", dataDir))
	images, diags = FetchImages(ctx, pf, FetchOptions{})
	if diags.HasErrors() {
		t.Fatalf("pinned offline: %v", diags)
	}
	runUntilExec(t, pf, images)
}

// TestFetchImagesPolicy: the agent config's allow-list and verify block
// refuse images with diagnostics at the gadget value; a signed image runs.
func TestFetchImagesPolicy(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	ref, store := pushBuiltin(t, reg, "trace_open", "v1")
	keys := t.TempDir()
	privPEM, pubPEM, err := sign.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(keys, "cosign.pub"), pubPEM, 0o644)
	_, otherPub, _ := sign.GenerateKeyPair(nil)
	os.WriteFile(filepath.Join(keys, "other.pub"), otherPub, 0o644)

	check := func(name, extra, wantSummary, wantDetail string) {
		t.Run(name, func(t *testing.T) {
			f := imageConfig(t, ref.String(), fmt.Sprintf("data_dir = %q\n%s", t.TempDir(), extra))
			images, diags := FetchImages(ctx, f, FetchOptions{})
			if wantSummary == "" {
				if diags.HasErrors() {
					t.Fatal(diags)
				}
				if d := Validate(f, images); d.HasErrors() {
					t.Fatal(d)
				}
				return
			}
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			d := diags[0]
			if d.Summary != wantSummary || !strings.Contains(d.Detail, wantDetail) || d.Subject == nil || d.Subject.Start.Line != 8 {
				t.Errorf("diagnostic = %s: %s at %v; want %q containing %q at line 8", d.Summary, d.Detail, d.Subject, wantSummary, wantDetail)
			}
		})
	}
	check("allowed by prefix", fmt.Sprintf("allow = [%q]", reg.Host+"/gadgets/*"), "", "")
	check("refused by the allow-list", fmt.Sprintf("allow = [%q]", reg.Host+"/other/*"), "Image not allowed", reg.Host+"/other/*")
	check("unsigned", fmt.Sprintf("verify { public_keys = [%q] }", filepath.Join(keys, "cosign.pub")), "Image signature not valid", "not signed")

	key, err := sign.LoadPrivateKey(privPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := store.Resolve(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oci.SignStored(ctx, store, ref, desc, key, sign.LayoutTag); err != nil {
		t.Fatal(err)
	}
	if err := oci.PushSignatures(ctx, store, ref, oci.RemoteOptions{Credentials: credentials.NewMemoryStore()}); err != nil {
		t.Fatal(err)
	}
	check("signed", fmt.Sprintf("verify { public_keys = [%q] }", filepath.Join(keys, "cosign.pub")), "", "")
	check("signed by another key", fmt.Sprintf("verify { public_keys = [%q] }", filepath.Join(keys, "other.pub")), "Image signature not valid", "none valid")
}

// TestFetchImagesOncePerReference: two sources naming the same image get it
// with one pull, even under pull_policy "always".
func TestFetchImagesOncePerReference(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	ref, _ := pushBuiltin(t, reg, "trace_exec", "v1")
	f := parseFile(t, t.TempDir(), fmt.Sprintf(`
agent {
  name        = "oci-host"
  data_dir    = %q
  pull_policy = "always"
}
source "gadget" "a" { gadget = %q }
source "gadget" "b" { gadget = %q }
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.a, source.gadget.b]
  sinks   = [sink.stdout.out]
}
`, t.TempDir(), ref.String(), ref.String()))
	var mu sync.Mutex
	finished := map[string]int{} // blob digest -> copies finished or skipped
	progress := func(ev oci.ProgressEvent) {
		mu.Lock()
		defer mu.Unlock()
		if ev.State == "done" || ev.State == "exists" {
			finished[ev.Digest]++
		}
	}
	images, diags := FetchImages(context.Background(), f, FetchOptions{Progress: progress})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if _, ok := images.Gadget(ref.String()); !ok {
		t.Fatal("the image was not fetched")
	}
	if len(finished) == 0 {
		t.Fatal("the pull reported no blob")
	}
	for d, n := range finished {
		if n != 1 {
			t.Errorf("blob %s was copied %d times", d, n)
		}
	}
}

// TestStageImageRoundTrip: a Wasm stage module built into a stage image,
// pushed, and named by a stage's module = "oci://REF", or "HOST/REPO:TAG"
// as gadget values name images, is fetched by the agent, comes back byte
// for byte and loads in the Wasm stage runtime.
func TestStageImageRoundTrip(t *testing.T) {
	for _, prefix := range []string{"oci://", ""} {
		t.Run("prefix "+prefix, func(t *testing.T) { testStageImageRoundTrip(t, prefix) })
	}
}

func testStageImageRoundTrip(t *testing.T, prefix string) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	module, err := os.ReadFile(filepath.Join("..", "wasmstages", "testdata", "filter.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "filter.wasm")
	if err := os.WriteFile(src, module, 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := oci.OpenStore(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ref, _ := oci.ParseReference(reg.Host + "/stages/filter:v1")
	if _, err := oci.Build(ctx, store, src, ref, oci.BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := oci.Push(ctx, store, ref, oci.RemoteOptions{Credentials: credentials.NewMemoryStore()}); err != nil {
		t.Fatal(err)
	}
	value := prefix + ref.String()
	f := parseFile(t, t.TempDir(), fmt.Sprintf(`
agent {
  name     = "oci-host"
  data_dir = %q
}
source "gadget" "exec" { gadget = "trace_exec" }
stage "wasm" "filter" { module = %q }
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.filter]
  sinks   = [sink.stdout.out]
}
`, t.TempDir(), value))
	images, diags := FetchImages(ctx, f, FetchOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if d := Validate(f, images); d.HasErrors() {
		t.Fatal(d)
	}
	got, err := images.StageModule(value)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, module) {
		t.Fatal("the fetched module differs from the built one")
	}
	if err := wasmstages.Check(ctx, wasmstages.Config{Name: "filter", ModuleBytes: got}); err != nil {
		t.Fatalf("the fetched module does not load: %v", err)
	}
	if _, err := images.StageModule("oci://" + reg.Host + "/stages/other:v1"); err == nil {
		t.Error("an unfetched module resolved")
	}
}

// TestReferenceHint: a file that is missing and reads like an image
// reference without its registry host says how to write one.
func TestReferenceHint(t *testing.T) {
	dir := t.TempDir()
	const hint = "needs its registry host"
	if _, err := resolveStageModule("registry/stages/x:v1", dir, nil); err == nil || !strings.Contains(err.Error(), hint) {
		t.Errorf("stage module registry/stages/x:v1: %v, want the hint", err)
	}
	if _, _, err := ResolveGadget("registry/gadgets/x@sha256:"+strings.Repeat("0", 64), dir); err == nil || !strings.Contains(err.Error(), hint) {
		t.Errorf("gadget registry/gadgets/x@sha256:...: %v, want the hint", err)
	}
	for _, v := range []string{"./stages/x.wasm", "stages/x.wasm", "/abs/x:v1"} {
		if _, err := resolveStageModule(v, dir, nil); err == nil || strings.Contains(err.Error(), hint) {
			t.Errorf("stage module %s: %v, want an error without the hint", v, err)
		}
	}
}
