package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/registrytest"
)

// TestCosignInterop checks signatures against the real cosign binary, in
// both directions and both layouts: an image sluice signs verifies with
// `cosign verify`, an image cosign signs verifies with `sluice image
// verify`, and each tool's keys work in the other. It needs a cosign binary
// in SLUICE_COSIGN (make bin/cosign builds one; .ci/run sets it); without
// it, outside CI, the committed cosign-made vectors in oci/sign/testdata
// cover cosign -> sluice.
func TestCosignInterop(t *testing.T) {
	cosignBin := interopTool(t, "SLUICE_COSIGN", "bin/cosign")
	reg := registrytest.Start(t, registrytest.Options{})
	e := newImageEnv(t)
	keys := t.TempDir()
	cosign := func(args ...string) (string, error) {
		cmd := exec.Command(cosignBin, args...)
		cmd.Dir = keys
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=pw", "DOCKER_CONFIG="+e.dockerConfig, "TUF_ROOT="+t.TempDir())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	cosignVerify := func(pub, ref string, oci11 bool) (string, error) {
		args := []string{"verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", "--offline=true"}
		if oci11 {
			args = append(args, "--experimental-oci11=true")
		}
		return cosign(append(args, ref)...)
	}
	push := func(name string) string {
		ref := reg.Host + "/gadgets/" + name + ":v1"
		e.ok(t, "image", "build", filepath.Join("..", "..", "gadgets", name), "-t", ref, "--arch", "amd64")
		e.ok(t, "image", "push", ref)
		return ref
	}
	if out, err := cosign("generate-key-pair", "--output-key-prefix", "cosign"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	e.ok(t, "image", "generate-key-pair", "--output-key-prefix", filepath.Join(keys, "sluice"))
	cosignKey, cosignPub := filepath.Join(keys, "cosign.key"), filepath.Join(keys, "cosign.pub")
	sluiceKey, sluicePub := filepath.Join(keys, "sluice.key"), filepath.Join(keys, "sluice.pub")

	// sluice signs (with its own key, and with cosign's), cosign verifies.
	for _, tc := range []struct {
		gadget, key, pub, layout string
	}{
		{"trace_exec", sluiceKey, sluicePub, "tag"},
		{"trace_open", cosignKey, cosignPub, "referrers"},
	} {
		ref := push(tc.gadget)
		e.ok(t, "image", "sign", "--key", tc.key, "--layout", tc.layout, "--push", ref)
		if out, err := cosignVerify(tc.pub, ref, tc.layout == "referrers"); err != nil || !strings.Contains(out, "cosign container image signature") {
			t.Errorf("cosign verify of a sluice %s-layout signature: %v\n%s", tc.layout, err, out)
		}
		other := sluicePub
		if tc.pub == sluicePub {
			other = cosignPub
		}
		if out, err := cosignVerify(other, ref, tc.layout == "referrers"); err == nil {
			t.Errorf("cosign verified a sluice signature with the wrong key:\n%s", out)
		}
	}

	// cosign signs (with its key, and with sluice's), sluice verifies what it
	// pulls.
	for _, tc := range []struct {
		gadget, key, pub string
	}{
		{"trace_signal", cosignKey, cosignPub},
		{"trace_tcpconnect", sluiceKey, sluicePub},
	} {
		ref := push(tc.gadget)
		if out, err := cosign("sign", "--key", tc.key, "--tlog-upload=false", "--allow-insecure-registry", "-y", ref); err != nil {
			t.Fatalf("cosign sign %s: %v\n%s", ref, err, out)
		}
		fresh := newImageEnv(t)
		fresh.ok(t, "image", "pull", ref)
		if out := fresh.ok(t, "image", "verify", "--key", tc.pub, ref); !strings.Contains(out, "verified "+ref) {
			t.Errorf("sluice verify of a cosign signature: %s", out)
		}
		other := sluicePub
		if tc.pub == sluicePub {
			other = cosignPub
		}
		if out, _, code := fresh.run(t, "", "image", "verify", "--key", other, ref); code == 0 {
			t.Errorf("sluice verified a cosign signature with the wrong key: %s", out)
		}
	}
}
