package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/oci"
)

var execsnoopWasm = filepath.Join("..", "..", "wasmbpf", "testdata", "execsnoop.wasm")

// runUntil starts sluice with args and env, runs /bin/true every 100ms
// until it exits, and returns its output.
func runUntil(t *testing.T, env []string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(sluiceBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			return stdout.String(), stderr.String()
		case <-time.After(100 * time.Millisecond):
			exec.Command("/bin/true").Run()
		}
	}
}

// TestWasmBPFImageCLI: a wasm-bpf application is built into eunomia-bpf's
// Wasm layout, pushed, signed, pulled and verified on another machine,
// listed and inspected as one, validated from a config naming it, and run
// by `sluice run REF -- ARGS` from the store alone.
func TestWasmBPFImageCLI(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	ref := reg.Host + "/apps/execsnoop:v1"
	a := newImageEnv(t)
	if out := a.ok(t, "image", "build", execsnoopWasm, "-t", ref); !strings.Contains(out, "built wasm-bpf image "+ref+"@sha256:") {
		t.Errorf("build output:\n%s", out)
	}
	a.ok(t, "image", "push", ref)
	a.ok(t, "image", "generate-key-pair", "--output-key-prefix", filepath.Join(a.dataDir, "cosign"))
	a.ok(t, "image", "sign", "--key", filepath.Join(a.dataDir, "cosign.key"), "--push", ref)

	b := newImageEnvWithConfig(t, a.dockerConfig)
	b.ok(t, "image", "pull", ref)
	if out := b.ok(t, "image", "verify", "--key", filepath.Join(a.dataDir, "cosign.pub"), ref); !strings.Contains(out, "verified "+ref) {
		t.Errorf("verify: %s", out)
	}
	if list := b.ok(t, "image", "list"); !regexp.MustCompile(regexp.QuoteMeta(ref) + `\s+wasm-bpf\s+[0-9a-f]{12}`).MatchString(list) {
		t.Errorf("list:\n%s", list)
	}
	inspect := b.ok(t, "image", "inspect", ref)
	for _, want := range []string{oci.MediaTypeWasmBPFLayer, "signature (tag layout)"} {
		if !strings.Contains(inspect, want) {
			t.Errorf("inspect lacks %q:\n%s", want, inspect)
		}
	}
	cfgPath := filepath.Join(t.TempDir(), "agent.hcl")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`agent {
  name = "n"
  verify { public_keys = [%q] }
}
source "wasm_bpf" "execs" {
  module = "oci://%s"
  args   = ["-p", "1"]
}
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.wasm_bpf.execs]
  sinks   = [sink.stdout.out]
}
`, filepath.Join(a.dataDir, "cosign.pub"), ref)), 0o644)
	if out := b.ok(t, "config", "validate", cfgPath); !strings.Contains(out, "valid") {
		t.Errorf("validate: %s", out)
	}
	b.ok(t, "image", "generate-key-pair", "--output-key-prefix", filepath.Join(b.dataDir, "other"))
	os.WriteFile(cfgPath, bytes.Replace(mustRead(t, cfgPath), []byte(filepath.Join(a.dataDir, "cosign.pub")), []byte(filepath.Join(b.dataDir, "other.pub")), 1), 0o644)
	if _, errOut, code := b.run(t, "", "config", "validate", cfgPath); code != 1 || !strings.Contains(errOut, "Image signature not valid") {
		t.Errorf("validate with another key: exit %d\n%s", code, errOut)
	}

	testutil.RequireBPF(t)
	reg.Stop()
	out, errOut := runUntil(t, []string{"SLUICE_DATA_DIR=" + b.dataDir}, "run", ref, "-o", "json", "--timeout", "4s", "--pull", "never", "--", "-p", fmt.Sprint(os.Getpid()))
	if !strings.Contains(out, `"source":"execsnoop"`) || !strings.Contains(out, `"comm":"true"`) || !strings.Contains(out, fmt.Sprintf(`"ppid":%d`, os.Getpid())) {
		t.Errorf("run output lacks the exec:\n%s\n%s", out, errOut)
	}
}

// TestRunWasmBPFFile: `sluice run app.wasm` runs a wasm-bpf application
// from a file (told from a gadget by its imports); --emit both makes its
// printed lines events beside its records.
func TestRunWasmBPFFile(t *testing.T) {
	testutil.RequireBPF(t)
	out, errOut := runUntil(t, nil, "run", execsnoopWasm, "-o", "json", "--emit", "both", "--timeout", "3s", "--", "-p", fmt.Sprint(os.Getpid()))
	for _, want := range []string{`"gadget":"execsnoop"`, `"comm":"true"`, `"stream":"stdout","line":"EXEC  true`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s\n%s", want, out, errOut)
		}
	}
	stage := filepath.Join("..", "..", "wasmstages", "testdata", "filter.wasm")
	if _, errOut, code := runSluice(t, "run", stage); code != 1 || !strings.Contains(errOut, "not a wasm-bpf application") {
		t.Errorf("run of a stage module: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := runSluice(t, "run", "trace_exec", "--", "-p", "1"); code != 2 || !strings.Contains(errOut, "arguments after -- are a wasm-bpf application's") {
		t.Errorf("run of a gadget with app args: exit %d\n%s", code, errOut)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
