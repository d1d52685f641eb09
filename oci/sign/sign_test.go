package sign_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"

	"github.com/sluice-dev/sluice/oci/sign"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCosignKeys opens private keys made by cosign itself.
func TestCosignKeys(t *testing.T) {
	for _, c := range []struct{ file, password string }{
		{"cosign-generated-empty-password.key", ""},
		{"cosign-testdata-hello.key", "hello"},
		{"cosign-legacy-label-123.key", "123"},
		{"sluice.key", "sluice-test"},
	} {
		t.Run(c.file, func(t *testing.T) {
			key, err := sign.LoadPrivateKey(read(t, c.file), []byte(c.password))
			if err != nil {
				t.Fatal(err)
			}
			// The key signs, and its public half verifies.
			sig, err := sign.SignPayload(key, []byte("payload"))
			if err != nil {
				t.Fatal(err)
			}
			if !sign.VerifyPayload(&key.PublicKey, []byte("payload"), sig) {
				t.Error("a signature by the key does not verify")
			}
			if _, err := sign.LoadPrivateKey(read(t, c.file), []byte(c.password+"x")); !errors.Is(err, sign.ErrWrongPassword) {
				t.Errorf("wrong password: %v", err)
			}
		})
	}
}

// TestVectors: each committed key pair and signature opens and verifies,
// refuses a changed payload and another key, and its payload is byte for
// byte the one NewPayload makes. "sluice" is this package's own; "cosign"
// was made by the cosign binary itself (v2.6.5: `cosign generate-key-pair`,
// then `cosign sign --key cosign.key --tlog-upload=false` of a sluice-built
// image, the signature fetched with `cosign download signature`).
func TestVectors(t *testing.T) {
	for _, v := range []struct {
		name, key, password, pub, payload, sig, otherPub, ref string
		digest                                                digest.Digest
	}{
		{"sluice", "sluice.key", "sluice-test", "sluice.pub", "sluice-payload.json", "sluice-payload.sig", "cosign-v2.6.5.pub",
			"localhost:5000/gadgets/trace_exec", "sha256:4f1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff0"},
		{"cosign", "cosign-v2.6.5.key", "pw", "cosign-v2.6.5.pub", "cosign-v2.6.5-payload.json", "cosign-v2.6.5-payload.sig", "sluice.pub",
			"localhost:5123/g/trace_exec", "sha256:030c69c2e244d1807158c84b1ce080d3df75315c038e9ce49dc2c837e4d86cf3"},
	} {
		t.Run(v.name, func(t *testing.T) {
			pub, err := sign.LoadPublicKey(read(t, v.pub))
			if err != nil {
				t.Fatal(err)
			}
			key, err := sign.LoadPrivateKey(read(t, v.key), []byte(v.password))
			if err != nil {
				t.Fatal(err)
			}
			if !key.PublicKey.Equal(pub) {
				t.Fatalf("%s and %s are not a pair", v.key, v.pub)
			}
			payload := read(t, v.payload)
			sig := strings.TrimSpace(string(read(t, v.sig)))
			if !sign.VerifyPayload(pub, payload, sig) {
				t.Fatal("the committed signature does not verify")
			}
			if sign.VerifyPayload(pub, append(bytes.Clone(payload), ' '), sig) {
				t.Fatal("a changed payload verified")
			}
			other, err := sign.LoadPublicKey(read(t, v.otherPub))
			if err != nil {
				t.Fatal(err)
			}
			if sign.VerifyPayload(other, payload, sig) {
				t.Fatal("the signature verified with another key")
			}
			want, err := sign.NewPayload(v.ref, v.digest)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(payload, want) {
				t.Errorf("NewPayload differs from the committed payload:\n got %s\nwant %s", want, payload)
			}
		})
	}
	// cosign's exact document: key order and "optional":null.
	const cosignDoc = `{"critical":{"identity":{"docker-reference":"localhost:5000/gadgets/trace_exec"},"image":{"docker-manifest-digest":"sha256:4f1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff0"},"type":"cosign container image signature"},"optional":null}`
	if payload := read(t, "sluice-payload.json"); string(payload) != cosignDoc {
		t.Errorf("payload = %s", payload)
	}
}

func TestKeyErrors(t *testing.T) {
	for _, c := range []struct{ name, pem, want string }{
		{"not pem", "hello", "no PEM block"},
		{"public as private", string(read(t, "sluice.pub")), `PEM type "PUBLIC KEY"`},
	} {
		if _, err := sign.LoadPrivateKey([]byte(c.pem), nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, err := sign.LoadPublicKey(read(t, "sluice.key")); err == nil || !strings.Contains(err.Error(), "want PUBLIC KEY") {
		t.Errorf("private as public: %v", err)
	}
}

// memTarget is an in-memory OCI store: the real oras memory store, for the
// layout logic alone (the registry round trip is tested in package oci).
func memTarget(t *testing.T) (sign.Location, ocispec.Descriptor) {
	t.Helper()
	m := memory.New()
	ctx := context.Background()
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`)
	if err := m.Push(ctx, ocispec.DescriptorEmptyJSON, bytes.NewReader([]byte("{}"))); err != nil {
		t.Fatal(err)
	}
	desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, manifest)
	if err := m.Push(ctx, desc, bytes.NewReader(manifest)); err != nil {
		t.Fatal(err)
	}
	return sign.Location{Target: m}, desc
}

func TestSignVerifyLayouts(t *testing.T) {
	ctx := context.Background()
	key, err := sign.LoadPrivateKey(read(t, "cosign-testdata-hello.key"), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := sign.LoadPrivateKey(read(t, "sluice.key"), []byte("sluice-test"))
	for _, layout := range []sign.Layout{sign.LayoutTag, sign.LayoutReferrers} {
		t.Run(string(layout), func(t *testing.T) {
			loc, subject := memTarget(t)
			if _, err := sign.Verify(ctx, loc, subject, []*ecdsa.PublicKey{&key.PublicKey}); !errors.Is(err, sign.ErrUnsigned) {
				t.Fatalf("before signing: %v", err)
			}
			if _, err := sign.Sign(ctx, loc, "localhost/x", subject, other, layout); err != nil {
				t.Fatal(err)
			}
			if _, err := sign.Verify(ctx, loc, subject, []*ecdsa.PublicKey{&key.PublicKey}); !errors.Is(err, sign.ErrNoValidSignature) {
				t.Fatalf("signed by another key: %v", err)
			}
			if _, err := sign.Sign(ctx, loc, "localhost/x", subject, key, layout); err != nil {
				t.Fatal(err)
			}
			v, err := sign.Verify(ctx, loc, subject, []*ecdsa.PublicKey{&key.PublicKey})
			if err != nil {
				t.Fatal(err)
			}
			if v.Layout != layout || v.DockerReference != "localhost/x" || v.Key != sign.Fingerprint(&key.PublicKey) {
				t.Errorf("verified = %+v", v)
			}
			if layout == sign.LayoutTag {
				// Both signatures are layers of the one .sig manifest.
				d, err := loc.Resolve(ctx, sign.SignatureTag(subject.Digest))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := content.FetchAll(ctx, loc, d)
				if n := strings.Count(string(b), sign.MediaTypeSimpleSigning); n != 2 {
					t.Errorf("signature manifest has %d layers, want 2: %s", n, b)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	pemKey, err := os.ReadFile("testdata/sluice.key")
	if err != nil {
		b.Fatal(err)
	}
	key, err := sign.LoadPrivateKey(pemKey, []byte("sluice-test"))
	if err != nil {
		b.Fatal(err)
	}
	payload, _ := sign.NewPayload("localhost/x", digest.FromString("x"))
	sig, _ := sign.SignPayload(key, payload)
	b.ReportAllocs()
	for b.Loop() {
		if !sign.VerifyPayload(&key.PublicKey, payload, sig) {
			b.Fatal("no")
		}
	}
}
