package security

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/oci"
)

// TestAllowListCannotBeBypassed runs the agent's image fetch (what `sluice
// agent` and `sluice config validate` do before anything runs) against a
// real registry and a data directory whose store already holds an image
// the allow-list does not allow. Neither a digest reference under an
// allowed name nor a tag-pinned rule with another digest gets it to run.
func TestAllowListCannotBeBypassed(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	remote := oci.RemoteOptions{Credentials: credentials.NewMemoryStore()}
	dataDir := t.TempDir()

	// The registry holds trace_exec v1 and v2 (the allowed repository) and
	// an "evil" image; the agent's store holds all three, the evil one
	// pulled for another reason.
	push := func(name string, created int64) (oci.Reference, string) {
		store, err := oci.OpenStore(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		ref, err := oci.ParseReference(reg.Host + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := oci.Build(ctx, store, filepath.Join("..", "gadgets", "trace_exec"), ref,
			oci.BuildOptions{Archs: []string{oci.HostArch}, Headers: gadgets.Headers(), Created: time.Unix(created, 0)}); err != nil {
			t.Fatal(err)
		}
		desc, err := oci.Push(ctx, store, ref, remote)
		if err != nil {
			t.Fatal(err)
		}
		return ref, desc.Digest.String()
	}
	v1, _ := push("gadgets/trace_exec:v1", 1)
	v2, v2Digest := push("gadgets/trace_exec:v2", 2)
	evil, evilDigest := push("other/evil:v1", 3)
	store, err := oci.OpenStore(ctx, oci.DataDir("", dataDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []oci.Reference{v1, v2, evil} {
		if _, err := oci.Pull(ctx, store, r, remote); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()

	name := v1.Name()
	for _, c := range []struct {
		name, allow, gadget string
		pullPolicy          string
	}{
		{"digest of another repository under an allowed name", name, name + "@" + evilDigest, "missing"},
		{"digest of another repository under an allowed name, offline", name, name + "@" + evilDigest, "never"},
		{"digest of another repository under an allowed prefix", reg.Host + "/gadgets/*", name + ":v1@" + evilDigest, "missing"},
		{"another digest under a tag-pinned rule", name + ":v1", name + ":v1@" + v2Digest, "missing"},
		{"another digest under a tag-pinned rule, offline", name + ":v1", name + "@" + v2Digest, "never"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := imageConfig(t, dataDir, c.allow, c.gadget, c.pullPolicy)
			images, diags := agent.FetchImages(ctx, f, agent.FetchOptions{})
			if !diags.HasErrors() {
				t.Fatalf("fetched %s under allow = [%q]: the allow-list was bypassed", c.gadget, c.allow)
			}
			if images != nil {
				if _, ok := images.Gadget(c.gadget); ok {
					t.Fatalf("the refused image is among the fetched ones")
				}
			}
			d := diags[0]
			if d.Subject == nil || d.Subject.Start.Line != 6 {
				t.Errorf("diagnostic at %v; want the gadget value (line 6)", d.Subject)
			}
			t.Logf("%s: %s", d.Summary, d.Detail)
		})
	}
	// The allowed image itself still runs, by tag and by its digest.
	for _, ref := range []string{v1.String(), name + "@" + mustResolve(t, dataDir, v1)} {
		f := imageConfig(t, dataDir, name+":v1", ref, "never")
		if _, diags := agent.FetchImages(ctx, f, agent.FetchOptions{}); diags.HasErrors() {
			t.Errorf("the allowed image %s was refused: %v", ref, diags)
		}
	}
}

func mustResolve(t *testing.T, dataDir string, ref oci.Reference) string {
	t.Helper()
	store, err := oci.OpenStore(context.Background(), oci.DataDir("", dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	desc, err := store.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest.String()
}

func imageConfig(t *testing.T, dataDir, allow, gadget, pullPolicy string) *config.File {
	t.Helper()
	src := fmt.Sprintf(`agent {
  data_dir    = %q
  allow       = [%q]
  pull_policy = %q
}
source "gadget" "exec" { gadget = %q }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`, dataDir, allow, pullPolicy, gadget)
	f, diags := config.Parse("images.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f
}
