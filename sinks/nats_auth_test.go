package sinks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
)

// authSetup is one authentication method: the server's options and the
// sink options that pass it, plus sink options that must fail.
type authSetup struct {
	name  string
	srv   *server.Options
	url   func(*server.Server) string
	good  func(*NATSOptions)
	bad   func(*NATSOptions) // credentials the server must refuse; nil: none to try
	clean func(*NATSOptions) // the unauthenticated attempt must fail too
}

func authSetups(t *testing.T) []authSetup {
	dir := t.TempDir()
	plainURL := func(s *server.Server) string { return s.ClientURL() }

	nkey, _ := nkeys.CreateUser()
	nkeyPub, _ := nkey.PublicKey()
	nkeySeed, _ := nkey.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	os.WriteFile(seedFile, nkeySeed, 0o600)
	otherKey, _ := nkeys.CreateUser()
	otherSeed, _ := otherKey.Seed()
	otherSeedFile := filepath.Join(dir, "other.nk")
	os.WriteFile(otherSeedFile, otherSeed, 0o600)

	operatorOpts, credsFile := operatorMode(t, dir)
	ca := newTestCA(t, dir)
	serverCert := ca.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.issueFiles(t, dir, "sluice-agent", x509.ExtKeyUsageClientAuth)
	strangerCA := newTestCA(t, filepath.Join(dir, "stranger"))
	strangerCert, strangerKey := strangerCA.issueFiles(t, filepath.Join(dir, "stranger"), "intruder", x509.ExtKeyUsageClientAuth)
	tlsURL := func(s *server.Server) string {
		return fmt.Sprintf("tls://127.0.0.1:%d", s.Addr().(*net.TCPAddr).Port)
	}

	return []authSetup{
		{
			name: "user_password",
			srv:  &server.Options{Username: "sluice", Password: "s3cret-pw"},
			url:  plainURL,
			good: func(o *NATSOptions) { o.User, o.Password = "sluice", "s3cret-pw" },
			bad:  func(o *NATSOptions) { o.User, o.Password = "sluice", "wrong-pw" },
		},
		{
			name: "token",
			srv:  &server.Options{Authorization: "t0ken-value"},
			url:  plainURL,
			good: func(o *NATSOptions) { o.Token = "t0ken-value" },
			bad:  func(o *NATSOptions) { o.Token = "not-the-t0ken" },
		},
		{
			name: "nkey",
			srv:  &server.Options{Nkeys: []*server.NkeyUser{{Nkey: nkeyPub}}},
			url:  plainURL,
			good: func(o *NATSOptions) { o.NKeySeedFile = seedFile },
			bad:  func(o *NATSOptions) { o.NKeySeedFile = otherSeedFile },
		},
		{
			name: "creds",
			srv:  operatorOpts,
			url:  plainURL,
			good: func(o *NATSOptions) { o.CredsFile = credsFile },
		},
		{
			name: "tls_client_cert",
			srv: &server.Options{TLS: true, TLSVerify: true, TLSConfig: &tls.Config{
				Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.pool(),
				ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
			}},
			url:   tlsURL,
			good:  func(o *NATSOptions) { o.CAFile, o.CertFile, o.KeyFile = ca.file, clientCert, clientKey },
			bad:   func(o *NATSOptions) { o.CAFile, o.CertFile, o.KeyFile = ca.file, strangerCert, strangerKey },
			clean: func(o *NATSOptions) { o.CAFile = ca.file }, // the server's CA, but no client certificate
		},
	}
}

// TestNATSAuthRoundTrips publishes through every authentication method, to
// core NATS and to JetStream, in both encodings, and reads the events back
// from a subscription or the stream. Wrong credentials are refused without
// the secret appearing in the error.
func TestNATSAuthRoundTrips(t *testing.T) {
	for _, a := range authSetups(t) {
		t.Run(a.name, func(t *testing.T) {
			opts := *a.srv
			opts.JetStream = true
			srv := startServer(t, &opts)
			url := a.url(srv)
			var readerOpts NATSOptions
			a.good(&readerOpts)

			unauth := NATSOptions{URL: url, Subject: "a", ConnectTimeout: 2 * time.Second}
			if a.clean != nil {
				a.clean(&unauth)
			}
			if s, err := NewNATS(context.Background(), "x", unauth); err == nil {
				s.Close(context.Background())
				t.Fatal("connected without credentials")
			}
			if a.bad != nil {
				bad := NATSOptions{URL: url, Subject: "a", ConnectTimeout: 2 * time.Second}
				a.bad(&bad)
				_, err := NewNATS(context.Background(), "x", bad)
				if err == nil {
					t.Fatal("connected with wrong credentials")
				}
				for _, secret := range []string{bad.Password, bad.Token} {
					if secret != "" && strings.Contains(err.Error(), secret) {
						t.Errorf("error leaks a secret: %v", err)
					}
				}
			}
			for _, js := range []bool{false, true} {
				for _, enc := range []string{"msgpack", "json"} {
					mode := "core"
					if js {
						mode = "jetstream"
					}
					t.Run(mode+"_"+enc, func(t *testing.T) {
						subject := fmt.Sprintf("rt.%s.%s.{source}", mode, enc)
						o := NATSOptions{URL: url, Subject: subject, Encoding: enc, Host: "h1", BootID: "b1"}
						a.good(&o)
						var ch chan *nats.Msg
						if js {
							o.JetStream = &JetStreamOptions{Stream: "RT_" + strings.ToUpper(enc), Create: true}
						} else {
							_, ch = subscribe(t, url, fmt.Sprintf("rt.%s.%s.>", mode, enc), readerConnectOptions(readerOpts)...)
						}
						s, err := NewNATS(context.Background(), "siem", o)
						if err != nil {
							t.Fatal(err)
						}
						var batch []pipeline.Event
						for i := uint64(1); i <= 3; i++ {
							batch = append(batch, seqEvent("exec", i, fmt.Sprintf("comm-%d", i)))
						}
						if err := s.Write(context.Background(), batch); err != nil {
							t.Fatal(err)
						}
						if err := s.Close(context.Background()); err != nil {
							t.Fatal(err)
						}
						var got []*nats.Msg
						if js {
							got = streamMessages(t, url, o.JetStream.Stream, 3, readerConnectOptions(readerOpts)...)
						} else {
							for range 3 {
								got = append(got, recv(t, ch))
							}
						}
						for i, m := range got {
							checkPayload(t, m, mode, enc, batch[i])
							if id := m.Header.Get(jetstream.MsgIDHeader); js != (id != "") {
								t.Errorf("message %d: Nats-Msg-Id %q with jetstream=%v", i, id, js)
							}
						}
					})
				}
			}
		})
	}
}

// checkPayload asserts m carries ev, encoded as enc, with the format
// headers.
func checkPayload(t *testing.T, m *nats.Msg, mode, enc string, ev pipeline.Event) {
	t.Helper()
	if m.Subject != "rt."+mode+"."+enc+".exec" {
		t.Errorf("subject %q", m.Subject)
	}
	if m.Header.Get(headerFormat) != FormatVersion {
		t.Errorf("Sluice-Format = %q", m.Header.Get(headerFormat))
	}
	var got map[string]any
	switch enc {
	case "msgpack":
		if m.Header.Get(headerContentType) != contentMsgpack || !bytes.Equal(m.Data, ev.Data) {
			t.Errorf("msgpack message: content type %q, payload passed through: %v", m.Header.Get(headerContentType), bytes.Equal(m.Data, ev.Data))
		}
		if err := msgpack.Unmarshal(m.Data, &got); err != nil {
			t.Fatal(err)
		}
	case "json":
		if m.Header.Get(headerContentType) != contentJSON {
			t.Errorf("content type %q", m.Header.Get(headerContentType))
		}
		if err := json.Unmarshal(m.Data, &got); err != nil {
			t.Fatalf("payload is not JSON: %v", err)
		}
	}
	if got["comm"] != fmt.Sprintf("comm-%d", ev.Seq) || fmt.Sprint(got["seq"]) != fmt.Sprint(ev.Seq) {
		t.Errorf("payload = %v, want seq %d", got, ev.Seq)
	}
}

// readerConnectOptions authenticates a test reader like the sink.
func readerConnectOptions(o NATSOptions) []nats.Option {
	var opts []nats.Option
	switch {
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	case o.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeedFile)
		if err != nil {
			panic(err)
		}
		opts = append(opts, opt)
	case o.CredsFile != "":
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.CertFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile), nats.ClientCert(o.CertFile, o.KeyFile))
	}
	return opts
}

// streamMessages reads the first n messages of a stream.
func streamMessages(t *testing.T, url, stream string, n int, opts ...nats.Option) []*nats.Msg {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []*nats.Msg
	for seq := uint64(1); len(out) < n; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("read message %d of stream %s: %v", seq, stream, err)
		}
		out = append(out, &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	}
	return out
}

// operatorMode returns server options for decentralised JWT auth (an
// operator, a system account and a JetStream-enabled account held in a
// memory resolver) and the .creds file of a user of that account.
func operatorMode(t *testing.T, dir string) (*server.Options, string) {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatal(err)
		}
	}
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	skp, _ := nkeys.CreateAccount()
	spub, _ := skp.PublicKey()
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()

	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "sluice-test"
	oc.SystemAccount = spub
	_, err := oc.Encode(okp)
	must(err)
	sc := jwt.NewAccountClaims(spub)
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(okp)
	must(err)
	ac := jwt.NewAccountClaims(apub)
	ac.Name = "EVENTS"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accJWT, err := ac.Encode(okp)
	must(err)
	uc := jwt.NewUserClaims(upub)
	uc.Name = "agent"
	userJWT, err := uc.Encode(akp)
	must(err)
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	must(err)
	credsFile := filepath.Join(dir, "agent.creds")
	must(os.WriteFile(credsFile, creds, 0o600))

	resolver := &server.MemAccResolver{}
	must(resolver.Store(spub, sysJWT))
	must(resolver.Store(apub, accJWT))
	return &server.Options{TrustedOperators: []*jwt.OperatorClaims{oc}, SystemAccount: spub, AccountResolver: resolver}, credsFile
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
	next int64
	mu   sync.Mutex
}

func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	os.MkdirAll(dir, 0o700)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA " + dir},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, "ca.pem"), next: 2}
	if err := os.WriteFile(ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue signs a certificate for name (an IP address gets an IP SAN).
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := ca.issuePEM(t, name, usage)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (ca *testCA) issueFiles(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := ca.issuePEM(t, name, usage)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func (ca *testCA) issuePEM(t *testing.T, name string, usage x509.ExtKeyUsage) ([]byte, []byte) {
	t.Helper()
	ca.mu.Lock()
	serial := ca.next
	ca.next++
	ca.mu.Unlock()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// TestNATSSecretsNeverLogged runs a sink through a refused connection, a
// disconnect and a reconnect with a logger capturing everything at debug
// level, and checks that neither the logs nor the errors hold the
// password, the token or a URL's embedded password.
func TestNATSSecretsNeverLogged(t *testing.T) {
	const password, token = "pw-SHOULD-NOT-APPEAR", "tok-SHOULD-NOT-APPEAR"
	var logs testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errs []string

	srv := startServer(t, &server.Options{Username: "sluice", Password: password, JetStream: true})
	port := srv.Addr().(*net.TCPAddr).Port
	// Refused: a wrong password in the options, and one in the URL.
	_, err := NewNATS(context.Background(), "x", NATSOptions{URL: srv.ClientURL(), Subject: "a", User: "sluice", Password: password + "-wrong", Logger: log})
	errs = append(errs, fmt.Sprint(err))
	_, err = NewNATS(context.Background(), "x", NATSOptions{URL: fmt.Sprintf("nats://sluice:%s-wrong@127.0.0.1:%d", password, port), Subject: "a", Logger: log})
	errs = append(errs, fmt.Sprint(err))
	_, err = NewNATS(context.Background(), "x", NATSOptions{URL: srv.ClientURL(), Subject: "a", Token: token, Logger: log})
	errs = append(errs, fmt.Sprint(err))
	// Connected, then the server goes away and comes back.
	s, err := NewNATS(context.Background(), "x", NATSOptions{URL: fmt.Sprintf("nats://sluice:%s@127.0.0.1:%d", password, port), Subject: "a",
		SpoolDir: t.TempDir(), Logger: log, JetStream: &JetStreamOptions{Stream: "S", Create: true, AckTimeout: 200 * time.Millisecond}})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	errs = append(errs, fmt.Sprint(s.Write(context.Background(), []pipeline.Event{seqEvent("exec", 1, "c")})))
	startServer(t, &server.Options{Username: "sluice", Password: password, JetStream: true, Port: port})
	waitSpoolEmpty(t, s, 20*time.Second)
	errs = append(errs, fmt.Sprint(s.Close(context.Background())))

	all := logs.String() + strings.Join(errs, "\n")
	if !strings.Contains(all, "disconnected") || !strings.Contains(all, "reconnected") {
		t.Errorf("logs do not show the disconnect and reconnect:\n%s", all)
	}
	for _, secret := range []string{password, token} {
		if strings.Contains(all, secret) {
			t.Errorf("a secret appears in the logs or errors:\n%s", all)
		}
	}
	if !strings.Contains(all, "***") {
		t.Errorf("the URL with a password is not shown redacted:\n%s", all)
	}
}

func waitSpoolEmpty(t *testing.T, s *NATS, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for s.spool.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("spool still holds %d bytes after %s", s.spool.Len(), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
