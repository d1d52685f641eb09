package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// imageEnv runs the sluice binary with its own data dir and docker config.
type imageEnv struct {
	dataDir, dockerConfig string
}

func newImageEnv(t *testing.T) *imageEnv {
	return &imageEnv{dataDir: t.TempDir(), dockerConfig: t.TempDir()}
}

func (e *imageEnv) run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(sluiceBin, args...)
	cmd.Env = append(os.Environ(), "SLUICE_DATA_DIR="+e.dataDir, "DOCKER_CONFIG="+e.dockerConfig, "COSIGN_PASSWORD=pw")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// interopTool returns the third-party binary (cosign, oras) that the
// environment variable env names. Without one the test skips, because
// `make test` does not build them (cosign takes minutes; `make
// test-interop` does); in CI (CI set) it fails instead: .ci/run builds them
// with make target and exports env, and a skip there would hide a dropped
// install step.
func interopTool(t *testing.T, env, target string) string {
	t.Helper()
	bin := os.Getenv(env)
	if bin != "" {
		return bin
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not set, and in CI this test must run: .ci/run builds the binary (make %s) and exports %s", env, target, env)
	}
	t.Skipf("set %s to the binary (make %s, or run make test-interop) to test against the real tool", env, target)
	return ""
}

func (e *imageEnv) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := e.run(t, "", args...)
	if code != 0 {
		t.Fatalf("sluice %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// TestImageCLI walks the image commands against a registry with basic
// auth: build, login, push, pull elsewhere, sign, verify, export, import,
// tag, rm, and `sluice run` of the pulled image.
func TestImageCLI(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{Users: map[string]string{"bob": "hunter2"}})
	ref := reg.Host + "/gadgets/trace_exec:v1"
	a := newImageEnv(t)
	out := a.ok(t, "image", "build", filepath.Join("..", "..", "gadgets", "trace_exec"), "-t", ref, "--arch", "amd64")
	if !strings.Contains(out, "amd64: prebuilt program.bpf.o") || !strings.Contains(out, "built gadget image "+ref+"@sha256:") {
		t.Errorf("build output:\n%s", out)
	}
	if _, errOut, code := a.run(t, "", "image", "push", ref); code == 0 || !strings.Contains(errOut, "credential") {
		t.Errorf("push without login: exit %d, %s", code, errOut)
	}
	if out, errOut, code := a.run(t, "hunter2\n", "image", "login", reg.Host, "-u", "bob", "--password-stdin"); code != 0 || !strings.Contains(out, "login succeeded") {
		t.Fatalf("login: exit %d %s %s", code, out, errOut)
	}
	out = a.ok(t, "image", "push", ref)
	if !strings.Contains(out, "pushed "+ref) {
		t.Errorf("push: %s", out)
	}
	a.ok(t, "image", "generate-key-pair", "--output-key-prefix", filepath.Join(a.dataDir, "cosign"))
	out = a.ok(t, "image", "sign", "--key", filepath.Join(a.dataDir, "cosign.key"), "--push", ref)
	if !strings.Contains(out, "pushed the signatures") {
		t.Errorf("sign: %s", out)
	}

	// Another machine: same docker config (logged in), its own store.
	b := &imageEnv{dataDir: t.TempDir(), dockerConfig: a.dockerConfig}
	b.ok(t, "image", "pull", ref)
	out = b.ok(t, "image", "verify", "--key", filepath.Join(a.dataDir, "cosign.pub"), ref)
	if !strings.Contains(out, "verified "+ref) {
		t.Errorf("verify: %s", out)
	}
	b.ok(t, "image", "generate-key-pair", "--output-key-prefix", filepath.Join(b.dataDir, "other"))
	if _, errOut, code := b.run(t, "", "image", "verify", "--key", filepath.Join(b.dataDir, "other.pub"), ref); code == 0 || !strings.Contains(errOut, "no valid signature") {
		t.Errorf("verify with another key: exit %d %s", code, errOut)
	}
	// config validate reads the gadget from the store and checks its params.
	cfgPath := filepath.Join(t.TempDir(), "agent.hcl")
	cfgText := fmt.Sprintf(`agent {
  name = "n"
  verify { public_keys = [%q] }
}
source "gadget" "exec" {
  gadget = %q
  params = { ignore_failed = true }
}
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`, filepath.Join(a.dataDir, "cosign.pub"), ref)
	os.WriteFile(cfgPath, []byte(cfgText), 0o644)
	if out := b.ok(t, "config", "validate", cfgPath); !strings.Contains(out, "valid") {
		t.Errorf("validate: %s", out)
	}
	os.WriteFile(cfgPath, []byte(strings.Replace(cfgText, "ignore_failed", "no_such_param", 1)), 0o644)
	if _, errOut, code := b.run(t, "", "config", "validate", cfgPath); code != 1 || !strings.Contains(errOut, "no_such_param") {
		t.Errorf("validate with a bad param: exit %d %s", code, errOut)
	}
	list := b.ok(t, "image", "list")
	if !regexp.MustCompile(regexp.QuoteMeta(ref) + `\s+gadget\s+[0-9a-f]{12}\s+amd64`).MatchString(list) {
		t.Errorf("list:\n%s", list)
	}
	inspect := b.ok(t, "image", "inspect", ref)
	for _, want := range []string{"name:      trace_exec", "ignore_failed (default \"false\")", "application/vnd.gadget.ebpf.program.v1+binary", "signature (tag layout)"} {
		if !strings.Contains(inspect, want) {
			t.Errorf("inspect lacks %q:\n%s", want, inspect)
		}
	}

	// export -> import into a third store, deterministic.
	tar1 := filepath.Join(t.TempDir(), "a.tar")
	tar2 := filepath.Join(t.TempDir(), "b.tar")
	b.ok(t, "image", "export", "-o", tar1, ref)
	b.ok(t, "image", "export", "-o", tar2, ref)
	d1, _ := os.ReadFile(tar1)
	d2, _ := os.ReadFile(tar2)
	if !bytes.Equal(d1, d2) {
		t.Error("two exports of the same image differ")
	}
	c := newImageEnv(t)
	if out := c.ok(t, "image", "import", tar1); !strings.Contains(out, "imported "+ref) {
		t.Errorf("import: %s", out)
	}
	c.ok(t, "image", "verify", "--key", filepath.Join(a.dataDir, "cosign.pub"), ref)
	c.ok(t, "image", "tag", ref, reg.Host+"/gadgets/trace_exec:stable")
	c.ok(t, "image", "rm", ref)
	if list := c.ok(t, "image", "list"); strings.Contains(list, ":v1") || !strings.Contains(list, ":stable") {
		t.Errorf("after rm:\n%s", list)
	}
	a.ok(t, "image", "logout", reg.Host)
	if _, errOut, code := newImageEnvWithConfig(t, a.dockerConfig).run(t, "", "image", "pull", ref); code == 0 {
		t.Errorf("pull after logout succeeded: %s", errOut)
	}

	// `sluice run REF`: the store b pulled into, the registry gone.
	testutil.RequireBPF(t)
	reg.Stop()
	marker := fmt.Sprintf("sluice-cli-oci-%d", rand.Uint32())
	cmd := exec.Command(sluiceBin, "run", ref, "-o", "json", "--timeout", "4s", "--pull", "never")
	cmd.Env = append(os.Environ(), "SLUICE_DATA_DIR="+b.dataDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		exec.Command("/bin/true", marker).Run()
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), marker) || !strings.Contains(stdout.String(), `"source":"trace_exec"`) {
		t.Errorf("run output lacks the exec (or source name trace_exec):\n%s\n%s", stdout.String(), stderr.String())
	}
}

func newImageEnvWithConfig(t *testing.T, dockerConfig string) *imageEnv {
	return &imageEnv{dataDir: t.TempDir(), dockerConfig: dockerConfig}
}

func TestImageCLIErrors(t *testing.T) {
	e := newImageEnv(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"image", "pull", "trace_exec"}, "name the registry host first"},
		{[]string{"image", "build", "/nonexistent", "-t", "localhost/x:v1"}, "no such file"},
		{[]string{"image", "inspect", "localhost/none:v1"}, "not in the local store"},
		{[]string{"image", "frobnicate"}, "unknown command"},
		{[]string{"run", "localhost/none:v1", "--pull", "never"}, "sluice image pull"},
	} {
		_, errOut, code := e.run(t, "", c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("sluice %s: exit %d, stderr %q, want %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
}

// TestImageInspectEscapesImageText: an image's metadata is whatever its
// builder wrote; `sluice image inspect` and `list` print it with escape
// sequences escaped.
func TestImageInspectEscapesImageText(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trace_exec")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "gadgets", "trace_exec"))); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "gadget.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	md = bytes.Replace(md, []byte("description: Trace process executions (execve, execveat), including failed ones."), []byte(`description: "\e]0;owned\a\e[2JTrace\u202e process executions"`), 1)
	md = bytes.Replace(md, []byte("description: Process ID (tgid)"), []byte(`description: "pid\e[8m hidden"`), 1)
	os.WriteFile(filepath.Join(dir, "gadget.yaml"), md, 0o644)
	e := newImageEnv(t)
	e.ok(t, "image", "build", dir, "-t", "localhost/evil/trace_exec:v1", "--arch", "amd64")
	for _, args := range [][]string{{"image", "inspect", "localhost/evil/trace_exec:v1"}, {"image", "list"}} {
		out := e.ok(t, args...)
		for _, c := range out {
			if (c < 0x20 && c != '\n') || c == 0x7f || c == '\u202e' {
				t.Fatalf("sluice %s printed the raw control character %U:\n%q", strings.Join(args, " "), c, out)
			}
		}
		if args[1] == "inspect" && (!strings.Contains(out, `about:     \x1b]0;owned\x07\x1b[2JTrace\u202e process`) || !strings.Contains(out, `pid: pid\x1b[8m hidden`)) {
			t.Errorf("inspect output lacks the escaped texts:\n%s", out)
		}
	}
}
