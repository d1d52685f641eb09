package registrytest

import (
	"context"
	"crypto/ecdsa"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/oci/sign"
)

// PushStage builds a stage image of module (as `sluice image build
// module.wasm` does) and pushes it to the registry as ref (a reference
// with a tag, such as r.Host+"/stages/tag:stable"), signed with key when
// key is not nil. It returns the image's digest. The same module always
// gives the same digest.
func (r *Registry) PushStage(t testing.TB, ref string, module []byte, key *ecdsa.PrivateKey) digest.Digest {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := oci.OpenStore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	parsed, err := oci.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "stage.wasm")
	if err := os.WriteFile(path, module, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := oci.Build(ctx, store, path, parsed, oci.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if key != nil {
		if _, err := oci.SignStored(ctx, store, parsed, res.Desc, key, sign.LayoutTag); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := oci.Push(ctx, store, parsed, oci.RemoteOptions{Credentials: credentials.NewMemoryStore()}); err != nil {
		t.Fatal(err)
	}
	return res.Desc.Digest
}

// DeleteTag removes ref's manifest (and with it every tag naming it) from
// the registry, as an operator deleting a tag would.
func (r *Registry) DeleteTag(t testing.TB, ref string) {
	t.Helper()
	ctx := context.Background()
	parsed, err := oci.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	opts := oci.RemoteOptions{Credentials: credentials.NewMemoryStore()}
	repo, err := opts.Repository(parsed)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := repo.Resolve(ctx, parsed.Tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Delete(ctx, desc); err != nil {
		t.Fatal(err)
	}
}
