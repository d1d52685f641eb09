package oci_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"testing"

	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/oci/sign"
)

// TestFollowTag: polling a tag is a HEAD request and pulls nothing; a
// moved tag resolves to the new digest, which StageAt fetches under the
// policy without moving the store's tag; TagStored then does.
func TestFollowTag(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	key, pub := keyPair(t)
	ref := mustRef(t, reg.Host+"/stages/f:stable")
	v1 := append(bytes.Clone(testWasm), 0, 2, 1, 'a') // a custom section: another digest
	v2 := append(bytes.Clone(testWasm), 0, 2, 1, 'b')
	d1 := reg.PushStage(t, ref.String(), v1, key)

	gets := func() int { return reg.Requests("GET", "manifests") + reg.Requests("GET", "blobs") }
	getsBefore, headsBefore := gets(), reg.Requests("HEAD", "manifests")
	for range 3 {
		desc, err := oci.ResolveRemote(ctx, ref, remoteOpts())
		if err != nil || desc.Digest != d1 {
			t.Fatalf("ResolveRemote = %s, %v; want %s", desc.Digest, err, d1)
		}
	}
	if n := gets() - getsBefore; n != 0 {
		t.Errorf("polling the tag made %d GET requests; want HEAD only", n)
	}
	if n := reg.Requests("HEAD", "manifests") - headsBefore; n != 3 {
		t.Errorf("polling the tag three times made %d HEAD requests", n)
	}

	store := openStore(t)
	d2 := reg.PushStage(t, ref.String(), v2, nil) // unsigned
	if desc, _ := oci.ResolveRemote(ctx, ref, remoteOpts()); desc.Digest != d2 {
		t.Fatalf("the moved tag resolves to %s, want %s", desc.Digest, d2)
	}
	policy := func(allow []string, keys ...*ecdsa.PublicKey) *oci.Resolver {
		return oci.NewResolver(store, oci.Policy{Allow: allow, PublicKeys: keys, Remote: remoteOpts()})
	}
	if _, err := policy(nil, pub).StageAt(ctx, ref, d2); !errors.Is(err, sign.ErrUnsigned) {
		t.Errorf("an unsigned version under a verify policy: %v, want ErrUnsigned", err)
	}
	var pe *oci.PolicyError
	if _, err := policy([]string{d1.String()}).StageAt(ctx, ref, d2); !errors.As(err, &pe) {
		t.Errorf("a digest the allow-list does not name: %v, want a PolicyError", err)
	}
	before := reg.Requests("GET", "blobs")
	if _, err := policy([]string{reg.Host + "/other/*"}).StageAt(ctx, ref, d2); !errors.As(err, &pe) {
		t.Errorf("a repository the allow-list does not name: %v, want a PolicyError", err)
	}
	if reg.Requests("GET", "blobs") != before {
		t.Error("an image the allow-list refuses by name was pulled")
	}
	img, err := policy(nil).StageAt(ctx, ref, d2)
	if err != nil || !bytes.Equal(img.Module, v2) || img.Digest != d2 {
		t.Fatalf("StageAt = %v; want v2's module", err)
	}
	if _, err := store.Resolve(ctx, ref); !errors.Is(err, oci.ErrNotFound) {
		t.Errorf("StageAt tagged the store: %v", err)
	}
	if err := policy(nil).TagStored(ctx, ref, d2); err != nil {
		t.Fatal(err)
	}
	if desc, err := store.Resolve(ctx, ref); err != nil || desc.Digest != d2 {
		t.Errorf("after TagStored the store's tag names %s, %v; want %s", desc.Digest, err, d2)
	}

	// With the tag gone, or the registry down, the poll fails; only the
	// first is ErrNotFound.
	reg.DeleteTag(t, ref.String())
	if _, err := oci.ResolveRemote(ctx, ref, remoteOpts()); !errors.Is(err, oci.ErrNotFound) {
		t.Errorf("a deleted tag: %v, want ErrNotFound", err)
	}
	reg.Stop()
	if _, err := oci.ResolveRemote(ctx, ref, remoteOpts()); err == nil || errors.Is(err, oci.ErrNotFound) {
		t.Errorf("a stopped registry: %v, want an error other than ErrNotFound", err)
	}
	reg.Restart(t)
	d3 := reg.PushStage(t, ref.String(), v1, key)
	if desc, err := oci.ResolveRemote(ctx, ref, remoteOpts()); err != nil || desc.Digest != d3 {
		t.Errorf("after a restart: %s, %v; want %s", desc.Digest, err, d3)
	}
}
