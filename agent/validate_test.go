package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/sources"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/validate/*.golden from the current output")

// TestCheckGolden renders what `sluice config validate` reports (Check)
// for every testdata/validate/*.hcl, configs the config package accepts
// but the agent would refuse, and compares it with the .golden beside it.
// A file whose name ends in _root needs what only root may read (tracefs)
// and is skipped, or failed under SLUICE_REQUIRE_BPF=1, without it.
func TestCheckGolden(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "validate", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no testdata/validate/*.hcl files")
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".hcl")
		t.Run(name, func(t *testing.T) {
			if strings.HasSuffix(name, "_root") {
				requireTracefs(t)
			}
			p := config.NewParser()
			f, diags := p.ParseFile(path)
			if diags.HasErrors() {
				t.Fatalf("the config package refuses %s; these files test what only the agent can check:\n%v", path, diags)
			}
			diags = append(diags, Check(context.Background(), f, nil)...)
			if !diags.HasErrors() {
				t.Fatalf("got no errors; every file in testdata/validate must produce some:\n%v", diags)
			}
			for _, d := range diags {
				if d.Subject == nil || d.Subject.Filename != path || d.Subject.Start.Line == 0 {
					t.Errorf("diagnostic %q has no subject range in %s: %v", d.Summary, path, d.Subject)
				}
			}
			var buf bytes.Buffer
			if err := p.WriteDiagnostics(&buf, diags, false); err != nil {
				t.Fatal(err)
			}
			testutil.Golden(t, strings.TrimSuffix(path, ".hcl")+".golden", buf.Bytes(), *updateGolden, "go test ./agent -run TestCheckGolden -update")
		})
	}
}

// requireTracefs makes sure tracefs is mounted and readable, which takes
// root (it is mode 0700).
func requireTracefs(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "reads tracefs (mode 0700) to find the kernel's tracepoints")
	if err := sources.PrepareKernel(); err != nil {
		t.Fatal(err)
	}
}

// TestValidateNATSFiles checks real credential and TLS files: good ones
// pass, and each kind of bad one is reported at the attribute naming it.
func TestValidateNATSFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	user, _ := nkeys.CreateUser()
	userSeed, _ := user.Seed()
	userPub, _ := user.PublicKey()
	account, _ := nkeys.CreateAccount()
	accountSeed, _ := account.Seed()
	token, err := jwt.NewUserClaims(userPub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(token, userSeed)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := selfSignedPEM(t)
	_, otherKeyPEM := selfSignedPEM(t)
	files := map[string]string{
		"seed": write("user.nk", userSeed), "account": write("account.nk", accountSeed),
		"creds": write("user.creds", creds), "cert": write("cert.pem", certPEM),
		"key": write("key.pem", keyPEM), "otherkey": write("other-key.pem", otherKeyPEM),
	}
	src := `
agent {
  control {
    nats {
      nkey_seed_file = "{account}"
    }
  }
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "nats" "good" {
  creds_file = "{creds}"
  tls {
    ca_file   = "{cert}"
    cert_file = "{cert}"
    key_file  = "{key}"
  }
}
sink "nats" "seed" { nkey_seed_file = "{seed}" }
sink "nats" "pair" {
  tls {
    cert_file = "{cert}"
    key_file  = "{otherkey}"
  }
}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.nats.good, sink.nats.seed, sink.nats.pair]
}
`
	for k, v := range files {
		src = strings.ReplaceAll(src, "{"+k+"}", v)
	}
	f, diags := config.Parse("n.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := validateNATSFiles(f)
	want := []struct {
		line   int
		detail string
	}{
		{21, `cert_file of sink "pair": with key_file ` + files["otherkey"] + `, not a certificate and its key: tls: private key does not match public key.`},
		{5, `nkey_seed_file of the control connection: the NKey seed in it is not a user's (its public key does not start with U).`},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%v", len(got), len(want), got)
	}
	for i, w := range want {
		d := got[i]
		if d.Severity != hcl.DiagError || d.Subject == nil || d.Subject.Start.Line != w.line || d.Detail != w.detail {
			t.Errorf("diagnostic %d = %q at %v, want line %d: %q", i, d.Detail, d.Subject, w.line, w.detail)
		}
	}
}

// selfSignedPEM makes a certificate for 127.0.0.1 and its key.
func selfSignedPEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
