package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/registrytest"
)

// TestORASInspectsImages reads images sluice built and pushed with the oras
// CLI, a standard OCI client that knows nothing of sluice: the gadget index
// and its per-architecture manifest with Inspektor Gadget's media types,
// the eBPF layer byte for byte, a stage image in the CNCF Wasm layout, and a
// referrers-layout signature through the referrers API. It needs an oras
// binary in SLUICE_ORAS (make bin/oras; .ci/run sets it).
func TestORASInspectsImages(t *testing.T) {
	orasBin := interopTool(t, "SLUICE_ORAS", "bin/oras")
	reg := registrytest.Start(t, registrytest.Options{})
	e := newImageEnv(t)
	oras := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(orasBin, append(args, "--plain-http")...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("oras %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.Bytes()
	}
	type descriptor struct {
		MediaType, Digest, ArtifactType string
		Platform                        *struct{ OS, Architecture string }
		Annotations                     map[string]string
	}
	type manifest struct {
		MediaType, ArtifactType string
		Config                  descriptor
		Layers, Manifests       []descriptor
	}
	fetch := func(args ...string) manifest {
		t.Helper()
		var m manifest
		if err := json.Unmarshal(oras(append([]string{"manifest", "fetch"}, args...)...), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}

	gadget := reg.Host + "/gadgets/trace_open:v1"
	e.ok(t, "image", "build", filepath.Join("..", "..", "gadgets", "trace_open"), "-t", gadget, "--arch", "amd64")
	e.ok(t, "image", "push", gadget)
	index := fetch(gadget)
	if index.MediaType != "application/vnd.oci.image.index.v1+json" || len(index.Manifests) != 1 ||
		index.Manifests[0].Platform == nil || index.Manifests[0].Platform.Architecture != "amd64" || index.Manifests[0].Platform.OS != "linux" {
		t.Fatalf("index as oras sees it: %+v", index)
	}
	m := fetch("--platform", "linux/amd64", gadget)
	if m.ArtifactType != "application/vnd.gadget.v1+binary" || m.Config.MediaType != "application/vnd.gadget.config.v1+yaml" ||
		len(m.Layers) != 1 || m.Layers[0].MediaType != "application/vnd.gadget.ebpf.program.v1+binary" {
		t.Fatalf("gadget manifest as oras sees it: %+v", m)
	}
	layer := oras("blob", "fetch", "--output", "-", reg.Host+"/gadgets/trace_open@"+m.Layers[0].Digest)
	want, err := os.ReadFile(filepath.Join("..", "..", "gadgets", "trace_open", "program.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(layer, want) {
		t.Error("the eBPF layer oras fetched is not the committed object")
	}
	if cfg := string(oras("blob", "fetch", "--output", "-", reg.Host+"/gadgets/trace_open@"+m.Config.Digest)); !strings.Contains(cfg, "name: trace_open") {
		t.Errorf("config blob (gadget.yaml) = %q", cfg)
	}

	// A stage image: the CNCF Wasm artifact layout.
	stage := reg.Host + "/stages/drop-comm:v1"
	e.ok(t, "image", "build", filepath.Join("..", "..", "stages", "drop-comm.wasm"), "-t", stage)
	e.ok(t, "image", "push", stage)
	sm := fetch(stage)
	if sm.Config.MediaType != "application/vnd.wasm.config.v0+json" || len(sm.Layers) != 1 || sm.Layers[0].MediaType != "application/wasm" {
		t.Fatalf("stage manifest as oras sees it: %+v", sm)
	}

	// A referrers-layout signature is found through the referrers API.
	keys := t.TempDir()
	e.ok(t, "image", "generate-key-pair", "--output-key-prefix", filepath.Join(keys, "k"))
	e.ok(t, "image", "sign", "--key", filepath.Join(keys, "k.key"), "--layout", "referrers", "--push", gadget)
	var refs struct{ Referrers []descriptor }
	if err := json.Unmarshal(oras("discover", "--format", "json", gadget), &refs); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range refs.Referrers {
		found = found || r.ArtifactType == "application/vnd.dev.cosign.artifact.sig.v1+json"
	}
	if !found {
		t.Errorf("oras discover found no cosign signature referrer: %+v", refs)
	}
}
