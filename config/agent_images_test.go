package config_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
)

const imagesPipeline = `
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`

func TestAgentImages(t *testing.T) {
	src := `agent {
  name        = "n"
  pull_policy = "never"
  allow       = ["localhost:5000/gadgets/*", "sha256:0000000000000000000000000000000000000000000000000000000000000000"]
  registries { insecure = ["registry.lan:5000"] }
  verify { public_keys = ["keys/cosign.pub"] }
}` + imagesPipeline
	f, diags := config.NewParser().ParseSource("t.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	im := f.Agent.Images
	got := config.Images{PullPolicy: im.PullPolicy, Allow: im.Allow, InsecureRegistries: im.InsecureRegistries, PublicKeys: im.PublicKeys}
	want := config.Images{
		PullPolicy:         "never",
		Allow:              []string{"localhost:5000/gadgets/*", "sha256:0000000000000000000000000000000000000000000000000000000000000000"},
		InsecureRegistries: []string{"registry.lan:5000"},
		PublicKeys:         []string{"keys/cosign.pub"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	if r := im.AllowRanges[1]; r.Start.Line != 4 {
		t.Errorf("allow[1] range = %v, want line 4", r)
	}
	if r := im.PublicKeysRanges[0]; r.Start.Line != 6 {
		t.Errorf("public_keys[0] range = %v", r)
	}
}

func TestAgentImagesErrors(t *testing.T) {
	for _, c := range []struct{ name, agent, want string }{
		{"bad policy", `pull_policy = "sometimes"`, `"sometimes" is not a valid pull_policy`},
		{"allow not a list", `allow = 3`, "Inappropriate value"},
		{"empty rule", `allow = [""]`, "must not contain empty strings"},
		{"no keys", `verify { public_keys = [] }`, "at least one PEM public key"},
		{"two verify blocks", "verify { public_keys = [\"a\"] }\nverify { public_keys = [\"b\"] }", "Duplicate verify block"},
		{"unknown registries attribute", `registries { secure = [] }`, "Unsupported argument"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "agent {\n  name = \"n\"\n  " + c.agent + "\n}" + imagesPipeline
			_, diags := config.NewParser().ParseSource("t.hcl", []byte(src))
			if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) {
				t.Fatalf("diags = %v, want %q", diags, c.want)
			}
			for _, d := range diags {
				if d.Subject == nil || d.Subject.Start.Line < 3 {
					t.Errorf("diagnostic without a useful range: %v", d)
				}
			}
		})
	}
}
