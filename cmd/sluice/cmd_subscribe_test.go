package main

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
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/sinks"
)

func startNATS(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, true
	if opts.JetStream {
		opts.StoreDir = t.TempDir()
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// events makes n events of host h1 numbered from first, in the agent's
// wire format.
func events(first, n int) []pipeline.Event { return hostEvents("h1", first, n) }

func hostEvents(host string, first, n int) []pipeline.Event {
	var evs []pipeline.Event
	for i := first; i < first+n; i++ {
		b := codec.AppendMapHeader(nil, 5)
		b = codec.AppendString(codec.AppendString(b, "host"), host)
		b = codec.AppendString(codec.AppendString(b, "source"), "exec")
		b = codec.AppendString(codec.AppendString(b, "comm"), fmt.Sprintf("comm-%d", i))
		b = codec.AppendUint(codec.AppendString(b, "pid"), uint64(1000+i))
		b = codec.AppendUint(codec.AppendString(b, "n"), uint64(i))
		evs = append(evs, pipeline.Event{Data: b, Source: "exec", Seq: uint64(i + 1)})
	}
	return evs
}

// publish writes events through a real NATS sink and closes it, which
// waits for the server to have them (acknowledged, for JetStream).
func publish(t *testing.T, opts sinks.NATSOptions, evs []pipeline.Event) {
	t.Helper()
	ctx := context.Background()
	s, err := sinks.NewNATS(ctx, "s", opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// subscribeRun runs `sluice subscribe` in-process until it exits.
type subscribeRun struct {
	out, errOut testutil.SyncBuffer
	done        chan int
	cancel      context.CancelFunc
}

func startSubscribe(t *testing.T, args ...string) *subscribeRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &subscribeRun{done: make(chan int, 1), cancel: cancel}
	go func() {
		r.done <- run(ctx, append([]string{"subscribe"}, args...), strings.NewReader(""), &r.out, &r.errOut)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// wait waits for the command to exit and returns its exit status.
func (r *subscribeRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		r.done <- code // for the cleanup
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("subscribe did not exit; stdout so far:\n%s\nstderr:\n%s", r.out.String(), r.errOut.String())
	}
	return 0
}

// waitLines waits until the command has printed n lines.
func (r *subscribeRun) waitLines(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); strings.Count(r.out.String(), "\n") < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("want %d lines; stdout so far:\n%s\nstderr:\n%s", n, r.out.String(), r.errOut.String())
		}
	}
}

// numbers returns the "n" of each JSON line printed.
func numbers(t *testing.T, out string) []int {
	t.Helper()
	var ns []int
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", l, err)
		}
		n, ok := ev["n"].(float64)
		if !ok {
			t.Fatalf("line %q has no n", l)
		}
		ns = append(ns, int(n))
	}
	return ns
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// waitSubscribed waits until the server has one subscription more than
// baseline: core NATS keeps nothing for late subscribers.
func waitSubscribed(t *testing.T, srv *server.Server, baseline uint32) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); srv.NumSubscriptions() <= baseline; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("subscribe never subscribed")
		}
	}
}

// TestSubscribePrintsEveryEncoding: `sluice subscribe` prints one JSON line
// per event whether the sink sends single events or batches, in msgpack or
// JSON, and -n counts events, not messages.
func TestSubscribePrintsEveryEncoding(t *testing.T) {
	srv := startNATS(t, &server.Options{})
	baseline := srv.NumSubscriptions()
	// 2 + 2 single events, then two batches of 3 (one message each).
	r := startSubscribe(t, "--server", srv.ClientURL(), "-n", "10", "t.>")
	waitSubscribed(t, srv, baseline)
	n := 0
	for _, c := range []struct {
		encoding string
		batch    int
		events   int
	}{{"msgpack", 0, 2}, {"json", 0, 2}, {"msgpack", 10, 3}, {"json", 10, 3}} {
		publish(t, sinks.NATSOptions{URL: srv.ClientURL(), Subject: "t.x", Encoding: c.encoding, BatchMaxEvents: c.batch}, events(n, c.events))
		n += c.events
	}
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.errOut.String())
	}
	if diff := cmp.Diff(seq(0, 9), numbers(t, r.out.String())); diff != "" {
		t.Errorf("events printed (-want +got):\n%s", diff)
	}
}

// TestSubscribeCountsEventsInBatches: -n stops within a batched message.
func TestSubscribeCountsEventsInBatches(t *testing.T) {
	srv := startNATS(t, &server.Options{})
	baseline := srv.NumSubscriptions()
	r := startSubscribe(t, "--server", srv.ClientURL(), "-n", "4", "t.>")
	waitSubscribed(t, srv, baseline)
	publish(t, sinks.NATSOptions{URL: srv.ClientURL(), Subject: "t.x", BatchMaxEvents: 10}, events(0, 10))
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.errOut.String())
	}
	if diff := cmp.Diff(seq(0, 3), numbers(t, r.out.String())); diff != "" {
		t.Errorf("a message of 10 events with -n 4 (-want +got):\n%s", diff)
	}
}

// TestSubscribeTable: -o table prints a header and a row per event, JSON
// encoded events included.
func TestSubscribeTable(t *testing.T) {
	srv := startNATS(t, &server.Options{})
	baseline := srv.NumSubscriptions()
	r := startSubscribe(t, "--server", srv.ClientURL(), "-n", "4", "-o", "table", "t.>")
	waitSubscribed(t, srv, baseline)
	publish(t, sinks.NATSOptions{URL: srv.ClientURL(), Subject: "t.x", BatchMaxEvents: 10}, events(0, 2))
	publish(t, sinks.NATSOptions{URL: srv.ClientURL(), Subject: "t.x", Encoding: "json"}, events(2, 2))
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(r.out.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[0], "COMM") {
		t.Fatalf("want a header and 4 rows:\n%s", r.out.String())
	}
	for i, l := range lines[1:] {
		if !strings.Contains(l, fmt.Sprintf("comm-%d", i)) || !strings.Contains(l, fmt.Sprint(1000+i)) || !strings.Contains(l, fmt.Sprintf("n=%d", i)) {
			t.Errorf("row %d = %q, want comm-%d, pid %d and n=%d", i, l, i, 1000+i, i)
		}
	}
}

// jetStreamFixture is a JetStream server with a stream SLUICE holding
// sluice.events.*.*, as the default config's sink creates it.
func jetStreamFixture(t *testing.T) (*server.Server, sinks.NATSOptions) {
	srv := startNATS(t, &server.Options{JetStream: true})
	return srv, sinks.NATSOptions{
		URL: srv.ClientURL(), Subject: "sluice.events.{host}.{source}", Host: "h1", BatchMaxEvents: 3, BatchMaxDelay: time.Millisecond,
		JetStream: &sinks.JetStreamOptions{Stream: "SLUICE", Create: true, Subjects: []string{"sluice.events.*.*"}},
	}
}

// TestSubscribeReplaysStream: a late consumer reads what the stream holds:
// --all, --last N events (across batched messages), --since a time, the
// stream found from the subject or named, a subject narrower than the
// stream's; then it follows new events.
func TestSubscribeReplaysStream(t *testing.T) {
	srv, opts := jetStreamFixture(t)
	publish(t, opts, events(0, 10)) // 4 messages: 3+3+3+1 events
	between := time.Now()
	publish(t, opts, events(10, 5)) // 3+2
	// Then 7 messages of another host: a consumer of h1's subject must
	// look further back than its last N messages of the stream.
	other := opts
	other.BatchMaxEvents = 0
	publish(t, other, hostEvents("h2", 100, 7))
	url := srv.ClientURL()
	everything := append(seq(0, 14), seq(100, 106)...)

	for _, c := range []struct {
		name string
		args []string
		want []int
	}{
		{"all", []string{"sluice.events.>", "--all", "-n", "22"}, everything},
		{"all named stream", []string{"sluice.events.>", "--stream", "SLUICE", "--all", "-n", "22"}, everything},
		{"last", []string{"sluice.events.>", "--last", "3", "-n", "3"}, seq(104, 106)},
		{"last within a batch", []string{"sluice.events.h1.>", "--last", "4", "-n", "4"}, seq(11, 14)},
		{"last across batches", []string{"sluice.events.h1.exec", "--last", "7", "-n", "7"}, seq(8, 14)},
		{"last more than held", []string{"sluice.events.h1.*", "--last", "100", "-n", "15"}, seq(0, 14)},
		{"since time", []string{"sluice.events.h1.*", "--since", between.Format(time.RFC3339Nano), "-n", "5"}, seq(10, 14)},
		{"since duration", []string{"sluice.events.>", "--since", "10m", "-n", "22"}, everything},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := startSubscribe(t, append([]string{"--server", url}, c.args...)...)
			if code := r.wait(t); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, r.errOut.String())
			}
			if diff := cmp.Diff(c.want, numbers(t, r.out.String())); diff != "" {
				t.Errorf("events printed (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("then follows", func(t *testing.T) {
		r := startSubscribe(t, "--server", url, "sluice.events.h1.exec", "--last", "2", "-n", "5")
		r.waitLines(t, 2)
		publish(t, opts, events(15, 3))
		if code := r.wait(t); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, r.errOut.String())
		}
		if diff := cmp.Diff(seq(13, 17), numbers(t, r.out.String())); diff != "" {
			t.Errorf("events printed (-want +got):\n%s", diff)
		}
	})

	t.Run("no stream holds the subject", func(t *testing.T) {
		r := startSubscribe(t, "--server", url, "other.>", "--all")
		if code := r.wait(t); code != 1 || !strings.Contains(r.errOut.String(), "--stream") {
			t.Errorf("exit %d, stderr:\n%s", code, r.errOut.String())
		}
	})
}

// TestSubscribeAuthenticates: the credentials flags reach the server the
// way the sink's do.
func TestSubscribeAuthenticates(t *testing.T) {
	dir := t.TempDir()
	t.Run("user and password", func(t *testing.T) {
		srv := startNATS(t, &server.Options{Username: "reader", Password: "s3cret"})
		r := startSubscribe(t, "--server", srv.ClientURL(), "-n", "1", "t.>")
		if code := r.wait(t); code != 1 || !strings.Contains(strings.ToLower(r.errOut.String()), "authorization") {
			t.Fatalf("without credentials: exit %d, stderr:\n%s", code, r.errOut.String())
		}
		baseline := srv.NumSubscriptions()
		r = startSubscribe(t, "--server", srv.ClientURL(), "--user", "reader", "--password", "s3cret", "-n", "1", "t.>")
		waitSubscribed(t, srv, baseline)
		publish(t, sinks.NATSOptions{URL: srv.ClientURL(), Subject: "t.x", User: "reader", Password: "s3cret"}, events(0, 1))
		if code := r.wait(t); code != 0 || len(numbers(t, r.out.String())) != 1 {
			t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, r.out.String(), r.errOut.String())
		}
	})
	t.Run("nkey", func(t *testing.T) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		seed, _ := kp.Seed()
		seedFile := filepath.Join(dir, "user.nk")
		os.WriteFile(seedFile, seed, 0o600)
		srv := startNATS(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
		baseline := srv.NumSubscriptions()
		r := startSubscribe(t, "--server", srv.ClientURL(), "--nkey", seedFile, "-n", "1", "t.>")
		waitSubscribed(t, srv, baseline)
		publish(t, sinks.NATSOptions{URL: srv.ClientURL(), Subject: "t.x", NKeySeedFile: seedFile}, events(0, 1))
		if code := r.wait(t); code != 0 || len(numbers(t, r.out.String())) != 1 {
			t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, r.out.String(), r.errOut.String())
		}
	})
	t.Run("the embedded server's reader credentials, found by themselves", func(t *testing.T) {
		// As the agent's embedded server: NKey users only. Run as the
		// agent's user, subscribe reads the read-only seed from the data
		// directory; elsewhere it says where it looked.
		dataDir := t.TempDir()
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		seed, _ := kp.Seed()
		seedFile := agent.NATSReaderSeedFile(dataDir)
		os.MkdirAll(filepath.Dir(seedFile), 0o700)
		os.WriteFile(seedFile, seed, 0o600)
		srv := startNATS(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
		elsewhere := t.TempDir()
		r := startSubscribe(t, "--server", srv.ClientURL(), "--data-dir", elsewhere, "-n", "1", "t.>")
		if code := r.wait(t); code != 1 || !strings.Contains(r.errOut.String(), filepath.Join(elsewhere, "nats-auth", "reader.nk")) {
			t.Fatalf("without credentials: exit %d, stderr:\n%s", code, r.errOut.String())
		}
		baseline := srv.NumSubscriptions()
		t.Setenv("SLUICE_DATA_DIR", dataDir) // as the agent's data_dir would be
		r = startSubscribe(t, "--server", srv.ClientURL(), "-n", "1", "t.>")
		waitSubscribed(t, srv, baseline)
		publish(t, sinks.NATSOptions{URL: srv.ClientURL(), Subject: "t.x", NKeySeedFile: seedFile}, events(0, 1))
		if code := r.wait(t); code != 0 || len(numbers(t, r.out.String())) != 1 {
			t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, r.out.String(), r.errOut.String())
		}
		// Against a server that wants no credentials they are not used.
		open := startNATS(t, &server.Options{})
		baseline = open.NumSubscriptions()
		r = startSubscribe(t, "--server", open.ClientURL(), "-n", "1", "t.>")
		waitSubscribed(t, open, baseline)
		publish(t, sinks.NATSOptions{URL: open.ClientURL(), Subject: "t.x"}, events(0, 1))
		if code := r.wait(t); code != 0 {
			t.Fatalf("against an open server: exit %d, stderr:\n%s", code, r.errOut.String())
		}
	})
	t.Run("tls with a client certificate", func(t *testing.T) {
		ca, caFile := newCA(t, dir)
		serverCert := ca.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth)
		certFile, keyFile := ca.issueFiles(t, dir, "reader", x509.ExtKeyUsageClientAuth)
		tlsConfig := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
		srv := startNATS(t, &server.Options{TLS: true, TLSConfig: tlsConfig, TLSVerify: true, TLSTimeout: 5})
		url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)
		r := startSubscribe(t, "--server", url, "--tls-ca", caFile, "-n", "1", "t.>")
		if code := r.wait(t); code != 1 {
			t.Fatalf("without a client certificate: exit %d, stderr:\n%s", code, r.errOut.String())
		}
		baseline := srv.NumSubscriptions()
		r = startSubscribe(t, "--server", url, "--tls-ca", caFile, "--tls-cert", certFile, "--tls-key", keyFile, "-n", "1", "t.>")
		waitSubscribed(t, srv, baseline)
		publish(t, sinks.NATSOptions{URL: url, Subject: "t.x", CAFile: caFile, CertFile: certFile, KeyFile: keyFile}, events(0, 1))
		if code := r.wait(t); code != 0 || len(numbers(t, r.out.String())) != 1 {
			t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, r.out.String(), r.errOut.String())
		}
	})
}

// TestSubscribeFlagMistakes: contradictory flags are usage errors (exit 2).
func TestSubscribeFlagMistakes(t *testing.T) {
	for _, args := range [][]string{
		{"x", "--last", "3", "--all"},
		{"x", "--since", "1m", "--last", "3"},
		{"x", "--creds", "a.creds", "--user", "u"},
		{"x", "--password", "p"},
		{"x", "--tls-cert", "c.pem"},
		{"x", "--since", "5"},
		{"x", "-o", "yaml"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append([]string{"subscribe"}, args...), strings.NewReader(""), &out, &errOut); code != 2 {
			t.Errorf("subscribe %v: exit %d, want 2; stderr:\n%s", args, code, errOut.String())
		}
	}
}

func TestSubjectCovers(t *testing.T) {
	for _, c := range []struct {
		pattern, sub string
		want         bool
	}{
		{"a.>", "a.*.*", true},
		{"a.>", "a.b", true},
		{"a.>", "a", false},
		{">", "a.*.>", true},
		{"a.*.*", "a.b.c", true},
		{"a.*.*", "a.*.>", false},
		{"a.*", "a.>", false},
		{"a.b.c", "a.*.c", false},
		{"a.b.c", "a.b.c", true},
		{"a.b", "a.b.c", false},
	} {
		if got := subjectCovers(c.pattern, c.sub); got != c.want {
			t.Errorf("subjectCovers(%q, %q) = %v, want %v", c.pattern, c.sub, got, c.want)
		}
	}
}

// testCA issues certificates for the TLS test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T, dir string) (*testCA, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	file := filepath.Join(dir, "ca.pem")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return &testCA{cert: cert, key: key, pool: pool}, file
}

func (ca *testCA) issuePEM(t *testing.T, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	c, k := ca.issuePEM(t, name, usage)
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (ca *testCA) issueFiles(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	c, k := ca.issuePEM(t, name, usage)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	os.WriteFile(certFile, c, 0o644)
	os.WriteFile(keyFile, k, 0o600)
	return certFile, keyFile
}
