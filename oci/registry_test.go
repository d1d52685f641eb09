package oci_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/oci/sign"
)

func remoteOpts() oci.RemoteOptions {
	return oci.RemoteOptions{Credentials: credentials.NewMemoryStore()}
}

// buildAndPush builds the gadgetWithWasm folder for archs and pushes it.
func buildAndPush(t *testing.T, reg *registrytest.Registry, name string, archs []string, opts oci.RemoteOptions) (oci.Reference, ocispec.Descriptor, *oci.Store) {
	t.Helper()
	ctx := context.Background()
	store := openStore(t)
	ref := mustRef(t, reg.Host+"/"+name)
	res, err := oci.Build(ctx, store, gadgetWithWasm(t), ref, oci.BuildOptions{Archs: archs, Headers: gadgets.Headers()})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := oci.Push(ctx, store, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != res.Desc.Digest {
		t.Fatalf("pushed %s, built %s", desc.Digest, res.Desc.Digest)
	}
	return ref, desc, store
}

// TestPushPullRoundTrip: what was built comes back byte for byte from a
// real registry, selected for the host's architecture, by tag and by
// digest.
func TestPushPullRoundTrip(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	// oras copies blobs concurrently: the callback must be safe for that.
	var mu sync.Mutex
	var events []oci.ProgressEvent
	opts := remoteOpts()
	opts.Progress = func(ev oci.ProgressEvent) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
	}
	ref, pushed, src := buildAndPush(t, reg, "gadgets/signal:v1", []string{"amd64"}, opts)
	built, err := src.Gadget(ctx, pushed, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if !hasState(events, "done") {
		t.Errorf("push reported no finished blob: %+v", events)
	}

	events = nil
	dst := openStore(t)
	desc, err := oci.Pull(ctx, dst, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != pushed.Digest {
		t.Fatalf("pulled %s, pushed %s", desc.Digest, pushed.Digest)
	}
	if !hasState(events, "done") {
		t.Errorf("pull reported no finished blob: %+v", events)
	}
	got, err := dst.Gadget(ctx, desc, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Program, built.Program) || !bytes.Equal(got.Wasm, built.Wasm) || !bytes.Equal(got.Metadata, built.Metadata) {
		t.Error("the pulled image's layers differ from the built ones")
	}

	// A digest-pinned reference pulls the same content into a fresh store.
	pinned := mustRef(t, reg.Host+"/gadgets/signal@"+pushed.Digest.String())
	fresh := openStore(t)
	if _, err := oci.Pull(ctx, fresh, pinned, remoteOpts()); err != nil {
		t.Fatal(err)
	}
	if d, err := fresh.Resolve(ctx, pinned); err != nil || d.Digest != pushed.Digest {
		t.Errorf("resolve pinned: %v %v", d.Digest, err)
	}
	// A pin to a digest the registry lacks is an error, not another image.
	bogus := mustRef(t, reg.Host+"/gadgets/signal@sha256:"+strings.Repeat("0", 64))
	if _, err := oci.Pull(ctx, openStore(t), bogus, remoteOpts()); err == nil {
		t.Error("pulling a digest the registry does not have succeeded")
	}
}

func hasState(events []oci.ProgressEvent, state string) bool {
	for _, e := range events {
		if e.State == state {
			return true
		}
	}
	return false
}

// TestMultiArchSelection: an index with amd64 and arm64 yields each
// architecture's own object; a missing architecture is a clear error. The
// folder has a prebuilt object per architecture (distinct programs, so the
// test tells them apart), so no compiler is needed.
func TestMultiArchSelection(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	dir := filepath.Join(t.TempDir(), "multi")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	amdObj, _ := gadgets.Lookup("trace_open")
	armObj, _ := gadgets.Lookup("trace_signal")
	writeFile(t, filepath.Join(dir, oci.ProgramObject), amdObj.Object)
	writeFile(t, filepath.Join(dir, oci.ProgramObjectFor("arm64")), armObj.Object)
	store := openStore(t)
	ref := mustRef(t, reg.Host+"/gadgets/multi:v1")
	res, err := oci.Build(ctx, store, dir, ref, oci.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Inputs["arm64"] != "prebuilt program.arm64.bpf.o" {
		t.Errorf("inputs = %v", res.Inputs)
	}
	if _, err := oci.Push(ctx, store, ref, remoteOpts()); err != nil {
		t.Fatal(err)
	}
	dst := openStore(t)
	r := oci.NewResolver(dst, oci.Policy{Pull: oci.PullMissing, Remote: remoteOpts()})
	amd, err := r.Gadget(ctx, ref, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	arm, err := r.Gadget(ctx, ref, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	host, err := r.Gadget(ctx, ref, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(amd.Program, amdObj.Object) || !bytes.Equal(arm.Program, armObj.Object) {
		t.Error("an architecture got another architecture's object")
	}
	if want := map[string]string{"amd64": amd.Manifest.String(), "arm64": arm.Manifest.String()}[oci.HostArch]; host.Manifest.String() != want {
		t.Errorf("host (%s) got manifest %s, want %s", oci.HostArch, host.Manifest, want)
	}
	if _, err := r.Gadget(ctx, ref, "riscv64"); !errors.Is(err, oci.ErrPlatform) || !strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
		t.Errorf("missing architecture: %v", err)
	}
}

// TestTamperedBlob: a registry serving a blob that does not hash to its
// digest is refused (leaving no temporary file behind), and so is a local
// store whose blob was changed.
func TestTamperedBlob(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	ref, pushed, src := buildAndPush(t, reg, "gadgets/tamper:v1", []string{"amd64"}, remoteOpts())
	img, err := src.Gadget(ctx, pushed, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	layer := ebpfLayer(t, src, img)
	path := reg.BlobPath(layer.Digest.Encoded())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	writeFile(t, path, data)
	dst := openStore(t)
	_, err = oci.Pull(ctx, dst, ref, remoteOpts())
	if err == nil || !strings.Contains(err.Error(), "mismatch") {
		t.Fatalf("pull of a tampered blob: %v, want a digest mismatch", err)
	}
	// The refused blob leaves nothing in the store's ingest folder.
	if left, _ := os.ReadDir(filepath.Join(dst.Root(), "ingest")); len(left) != 0 {
		t.Errorf("a failed pull left %d temporary files in ingest/: %v", len(left), left)
	}

	// Local tampering is caught when the image is read.
	local := filepath.Join(src.Root(), "blobs", "sha256", layer.Digest.Encoded())
	orig, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	orig[10] ^= 0xff
	writeFile(t, local, orig)
	if _, err := src.Gadget(ctx, pushed, "amd64"); err == nil || !strings.Contains(err.Error(), "mismatch") {
		t.Fatalf("read of a tampered local blob: %v", err)
	}
}

func ebpfLayer(t *testing.T, store *oci.Store, img *oci.GadgetImage) ocispec.Descriptor {
	t.Helper()
	var m ocispec.Manifest
	readJSON(t, store, img.Manifest.Encoded(), &m)
	for _, l := range m.Layers {
		if l.MediaType == oci.MediaTypeEBPF {
			return l
		}
	}
	t.Fatal("no eBPF layer")
	return ocispec.Descriptor{}
}

// TestOffline: once pulled, an image resolves with the registry gone
// (policies missing and never); "always" says why it failed.
func TestOffline(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	ref, pushed, _ := buildAndPush(t, reg, "gadgets/offline:v1", []string{"amd64"}, remoteOpts())
	store := openStore(t)
	if _, err := oci.NewResolver(store, oci.Policy{Pull: oci.PullMissing, Remote: remoteOpts()}).Gadget(ctx, ref, "amd64"); err != nil {
		t.Fatal(err)
	}
	reg.Stop()
	for _, p := range []oci.PullPolicy{oci.PullMissing, oci.PullNever} {
		img, err := oci.NewResolver(store, oci.Policy{Pull: p, Remote: remoteOpts()}).Gadget(ctx, ref, "amd64")
		if err != nil {
			t.Fatalf("policy %s offline: %v", p, err)
		}
		if img.Digest != pushed.Digest {
			t.Errorf("policy %s: %s", p, img.Digest)
		}
	}
	if _, err := oci.NewResolver(store, oci.Policy{Pull: oci.PullAlways, Remote: remoteOpts()}).Gadget(ctx, ref, "amd64"); err == nil || !strings.Contains(err.Error(), `pull policy "always"`) {
		t.Errorf("policy always with the registry down: %v", err)
	}
	if _, err := oci.NewResolver(openStore(t), oci.Policy{Pull: oci.PullNever}).Gadget(ctx, ref, "amd64"); !errors.Is(err, oci.ErrNotFound) || !strings.Contains(err.Error(), "sluice image pull") {
		t.Errorf("policy never, empty store: %v", err)
	}
}

// TestBasicAuth: a registry behind htpasswd refuses anonymous pushes and
// accepts them after Login, which stores the credential in a docker config.
func TestBasicAuth(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{Users: map[string]string{"alice": "s3cret"}})
	store := openStore(t)
	ref := mustRef(t, reg.Host+"/gadgets/auth:v1")
	if _, err := oci.Build(ctx, store, gadgetWithWasm(t), ref, oci.BuildOptions{Archs: []string{"amd64"}}); err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(t.TempDir(), "config.json")
	creds, err := credentials.NewStore(configPath, credentials.StoreOptions{AllowPlaintextPut: true})
	if err != nil {
		t.Fatal(err)
	}
	opts := oci.RemoteOptions{Credentials: creds}
	if _, err := oci.Push(ctx, store, ref, opts); err == nil || !strings.Contains(err.Error(), "credential not found") {
		t.Fatalf("anonymous push: %v, want a missing credential", err)
	}
	if err := oci.Login(ctx, reg.Host, auth.Credential{Username: "alice", Password: "wrong"}, opts); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	if err := oci.Login(ctx, reg.Host, auth.Credential{Username: "alice", Password: "s3cret"}, opts); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(configPath)
	if err != nil || !strings.Contains(string(cfg), reg.Host) {
		t.Fatalf("docker config after login: %s %v", cfg, err)
	}
	// A fresh credential store reading the same file, as another process.
	creds2, err := credentials.NewStore(configPath, credentials.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts2 := oci.RemoteOptions{Credentials: creds2}
	if _, err := oci.Push(ctx, store, ref, opts2); err != nil {
		t.Fatal(err)
	}
	if _, err := oci.Pull(ctx, openStore(t), ref, opts2); err != nil {
		t.Fatal(err)
	}
	if err := oci.Logout(ctx, reg.Host, opts2); err != nil {
		t.Fatal(err)
	}
	creds3, _ := credentials.NewStore(configPath, credentials.StoreOptions{})
	if _, err := oci.Pull(ctx, openStore(t), ref, oci.RemoteOptions{Credentials: creds3}); err == nil {
		t.Error("pull after logout succeeded")
	}
}

func keyPair(t *testing.T) (*ecdsa.PrivateKey, *ecdsa.PublicKey) {
	t.Helper()
	priv, pub, err := sign.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := sign.LoadPrivateKey(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := sign.LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k, p
}

// TestSignatures: signatures made in the store travel with push and pull in
// both layouts and are checked offline; unsigned, wrongly signed and
// misattached signatures are refused.
func TestSignatures(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	key, pub := keyPair(t)
	_, otherPub := keyPair(t)
	for _, layout := range []sign.Layout{sign.LayoutTag, sign.LayoutReferrers} {
		t.Run(string(layout), func(t *testing.T) {
			ref, desc, src := buildAndPush(t, reg, "gadgets/signed-"+string(layout)+":v1", []string{"amd64"}, remoteOpts())
			if _, err := oci.SignStored(ctx, src, ref, desc, key, layout); err != nil {
				t.Fatal(err)
			}
			if err := oci.PushSignatures(ctx, src, ref, remoteOpts()); err != nil {
				t.Fatal(err)
			}
			store := openStore(t)
			r := oci.NewResolver(store, oci.Policy{Pull: oci.PullMissing, PublicKeys: []*ecdsa.PublicKey{pub}, Remote: remoteOpts()})
			if _, err := r.Gadget(ctx, ref, "amd64"); err != nil {
				t.Fatal(err)
			}
			v, err := oci.VerifyStored(ctx, store, ref, mustDesc(t, store, ref), []*ecdsa.PublicKey{pub})
			if err != nil || v.Layout != layout || v.DockerReference != ref.Name() {
				t.Errorf("verify: %+v %v", v, err)
			}
			reg2 := oci.NewResolver(store, oci.Policy{Pull: oci.PullNever, PublicKeys: []*ecdsa.PublicKey{otherPub}})
			if _, err := reg2.Gadget(ctx, ref, "amd64"); !errors.Is(err, sign.ErrNoValidSignature) {
				t.Errorf("wrong key: %v", err)
			}
		})
	}

	t.Run("unsigned", func(t *testing.T) {
		ref, _, _ := buildAndPush(t, reg, "gadgets/unsigned:v1", []string{"amd64"}, remoteOpts())
		r := oci.NewResolver(openStore(t), oci.Policy{PublicKeys: []*ecdsa.PublicKey{pub}, Remote: remoteOpts()})
		_, err := r.Gadget(ctx, ref, "amd64")
		if !errors.Is(err, sign.ErrUnsigned) || !strings.Contains(err.Error(), "refuse image") {
			t.Errorf("unsigned: %v", err)
		}
	})

	t.Run("signature of another image", func(t *testing.T) {
		// Sign image A, then hang A's signature manifest on B's tag.
		store := openStore(t)
		refA := mustRef(t, "localhost/x/a:v1")
		refB := mustRef(t, "localhost/x/b:v1")
		resA, err := oci.Build(ctx, store, gadgetWithWasm(t), refA, oci.BuildOptions{Archs: []string{"amd64"}})
		if err != nil {
			t.Fatal(err)
		}
		stageFile := filepath.Join(t.TempDir(), "b.wasm")
		writeFile(t, stageFile, testWasm)
		resB, err := oci.Build(ctx, store, stageFile, refB, oci.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sigA, err := oci.SignStored(ctx, store, refA, resA.Desc, key, sign.LayoutTag)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Layout().Tag(ctx, sigA, refB.Name()+":"+sign.SignatureTag(resB.Desc.Digest)); err != nil {
			t.Fatal(err)
		}
		_, err = oci.VerifyStored(ctx, store, refB, resB.Desc, []*ecdsa.PublicKey{pub})
		if !errors.Is(err, sign.ErrNoValidSignature) || !strings.Contains(err.Error(), "a signature is for "+resA.Desc.Digest.String()) {
			t.Errorf("misattached signature: %v", err)
		}
	})
}

func mustDesc(t *testing.T, store *oci.Store, ref oci.Reference) ocispec.Descriptor {
	t.Helper()
	d, err := store.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAllowList: names, prefixes and digests; a refused image is not
// pulled and the error lists the rules.
func TestAllowList(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	ref, desc, _ := buildAndPush(t, reg, "team/gadgets/allow:v1", []string{"amd64"}, remoteOpts())
	cases := []struct {
		name  string
		rules oci.AllowList
		ok    bool
	}{
		{"empty list allows all", nil, true},
		{"prefix", oci.AllowList{reg.Host + "/team/*"}, true},
		{"other prefix", oci.AllowList{reg.Host + "/other/*"}, false},
		{"name any tag", oci.AllowList{reg.Host + "/team/gadgets/allow"}, true},
		{"name and tag", oci.AllowList{reg.Host + "/team/gadgets/allow:v1"}, true},
		{"name other tag", oci.AllowList{reg.Host + "/team/gadgets/allow:v2"}, false},
		{"digest", oci.AllowList{desc.Digest.String()}, true},
		{"other digest", oci.AllowList{"sha256:" + strings.Repeat("1", 64)}, false},
		{"name at digest", oci.AllowList{reg.Host + "/team/gadgets/allow@" + desc.Digest.String()}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, rule := range c.rules {
				if err := oci.ValidateRule(rule); err != nil {
					t.Fatal(err)
				}
			}
			store := openStore(t)
			_, err := oci.NewResolver(store, oci.Policy{Allow: c.rules, Remote: remoteOpts()}).Gadget(ctx, ref, "amd64")
			var pe *oci.PolicyError
			if c.ok != (err == nil) || (!c.ok && !errors.As(err, &pe)) {
				t.Fatalf("err = %v, want allowed=%v", err, c.ok)
			}
			if !c.ok && !strings.Contains(err.Error(), c.rules[0]) {
				t.Errorf("error does not name the rules: %v", err)
			}
		})
	}
	if err := oci.ValidateRule("registry/*/x"); err == nil {
		t.Error("a '*' in the middle was accepted")
	}
	// A refused name is not pulled at all.
	store := openStore(t)
	oci.NewResolver(store, oci.Policy{Allow: oci.AllowList{reg.Host + "/other/*"}, Remote: remoteOpts()}).Gadget(ctx, ref, "amd64")
	if _, err := store.Resolve(ctx, ref); !errors.Is(err, oci.ErrNotFound) {
		t.Errorf("a refused image was pulled: %v", err)
	}
}

// TestAllowListDigestBypass: the allow-list cannot be walked around with a
// digest. A digest reference under an allowed name must not reach another
// repository's image that happens to be in the store, and a tag rule
// allows the content its tag names, not every digest of the repository.
func TestAllowListDigestBypass(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	// Three distinct images: the creation time changes the digest.
	push := func(name string, created int64) (oci.Reference, ocispec.Descriptor) {
		store := openStore(t)
		ref := mustRef(t, reg.Host+"/"+name)
		if _, err := oci.Build(ctx, store, gadgetWithWasm(t), ref, oci.BuildOptions{Archs: []string{"amd64"}, Headers: gadgets.Headers(), Created: time.Unix(created, 0)}); err != nil {
			t.Fatal(err)
		}
		desc, err := oci.Push(ctx, store, ref, remoteOpts())
		if err != nil {
			t.Fatal(err)
		}
		return ref, desc
	}
	v1Ref, v1 := push("team/gadgets/allow:v1", 1)
	_, v2 := push("team/gadgets/allow:v2", 2)
	evilRef, evil := push("other/evil:v1", 3)
	if v1.Digest == v2.Digest || v1.Digest == evil.Digest || v2.Digest == evil.Digest {
		t.Fatal("the test images are not distinct")
	}
	name := reg.Host + "/team/gadgets/allow"
	for _, c := range []struct {
		name, rule, ref string
		want            digest.Digest // "" = refused
	}{
		{"name rule, another repository's digest", name, name + "@" + evil.Digest.String(), ""},
		{"name rule, tag and another repository's digest", name, name + ":v1@" + evil.Digest.String(), ""},
		{"prefix rule, another repository's digest", reg.Host + "/team/*", name + "@" + evil.Digest.String(), ""},
		{"tag rule, the tag with another digest", name + ":v1", name + ":v1@" + v2.Digest.String(), ""},
		{"tag rule, another digest of the repository", name + ":v1", name + "@" + v2.Digest.String(), ""},
		{"tag rule, another tag", name + ":v1", name + ":v2", ""},
		{"tag rule, another repository's digest", name + ":v1", name + ":v1@" + evil.Digest.String(), ""},
		{"tag rule, the tag", name + ":v1", name + ":v1", v1.Digest},
		{"tag rule, the digest the tag names", name + ":v1", name + "@" + v1.Digest.String(), v1.Digest},
		{"name rule, a digest of the repository", name, name + "@" + v2.Digest.String(), v2.Digest},
	} {
		for _, pull := range []oci.PullPolicy{oci.PullMissing, oci.PullNever, oci.PullAlways} {
			t.Run(c.name+"/"+string(pull), func(t *testing.T) {
				// The agent's store holds the allowed image, both tags, and
				// an image of another repository pulled for another reason.
				store := openStore(t)
				for _, r := range []oci.Reference{v1Ref, mustRef(t, name+":v2"), evilRef} {
					if _, err := oci.Pull(ctx, store, r, remoteOpts()); err != nil {
						t.Fatal(err)
					}
				}
				desc, err := oci.NewResolver(store, oci.Policy{Pull: pull, Allow: oci.AllowList{c.rule}, Remote: remoteOpts()}).Resolve(ctx, mustRef(t, c.ref))
				switch {
				case c.want == "" && err == nil:
					t.Fatalf("allowed %s (%s) under rule %s", c.ref, desc.Digest, c.rule)
				case c.want != "" && err != nil:
					t.Fatalf("refused %s under rule %s: %v", c.ref, c.rule, err)
				case c.want != "" && desc.Digest != c.want:
					t.Fatalf("resolved %s to %s; want %s", c.ref, desc.Digest, c.want)
				}
			})
		}
	}
}

// TestStoreSweepsIngestAtOpen: temporary files of a process that died mid
// pull are removed when the store is next opened.
func TestStoreSweepsIngestAtOpen(t *testing.T) {
	dir := t.TempDir()
	store, err := oci.OpenStore(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	ingest := filepath.Join(store.Root(), "ingest")
	os.MkdirAll(ingest, 0o755)
	writeFile(t, filepath.Join(ingest, strings.Repeat("a", 64)+"_123"), []byte("half a blob"))
	store.Close()
	store, err = oci.OpenStore(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if left, _ := os.ReadDir(ingest); len(left) != 0 {
		t.Errorf("ingest/ holds %v after reopening the store", left)
	}
}

// TestClaimedSizeNotAllocated: a manifest that names a small blob of the
// store as hundreds of MiB is refused without allocating what it claims.
func TestClaimedSizeNotAllocated(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	ref := mustRef(t, "localhost/claims/x:v1")
	res, err := oci.Build(ctx, store, gadgetWithWasm(t), ref, oci.BuildOptions{Archs: []string{"amd64"}, Headers: gadgets.Headers()})
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	readJSON(t, store, res.Desc.Digest.Encoded(), &idx)
	var m ocispec.Manifest
	readJSON(t, store, idx.Manifests[0].Digest.Encoded(), &m)
	for i := range m.Layers {
		if m.Layers[i].MediaType == oci.MediaTypeEBPF {
			m.Layers[i].Size = 200 << 20 // the real object, claimed to be 200 MiB
		}
	}
	b, _ := json.Marshal(m)
	md := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, b)
	if err := store.Layout().Push(ctx, md, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = store.Gadget(ctx, md, "amd64")
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "descriptor says") {
		t.Fatalf("Gadget of a descriptor with a false size: %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("refusing it allocated %d MiB", got>>20)
	}
}
