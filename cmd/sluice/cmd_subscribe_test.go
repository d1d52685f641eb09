package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/sluice-dev/sluice/agent"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/sinks"
)

// TestSubscribePrintsEveryEncoding: `sluice subscribe` prints one JSON line
// per event whether the sink sends single events or batches, in msgpack or
// JSON.
func TestSubscribePrintsEveryEncoding(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	defer srv.Shutdown()
	var out testutil.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const perSink = 3
	cases := []struct {
		encoding string
		batch    int
	}{{"msgpack", 0}, {"json", 0}, {"msgpack", 10}, {"json", 10}}
	baseline := srv.NumSubscriptions() // the server's own
	done := make(chan error, 1)
	go func() {
		done <- cmdSubscribe(ctx, []string{"--server", srv.ClientURL(), "-n", "6", "t.>"}, &out, &out)
	}()
	// Wait for the subscription before publishing (core NATS keeps nothing).
	for deadline := time.Now().Add(5 * time.Second); srv.NumSubscriptions() == baseline; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("subscribe never subscribed")
		}
	}
	for i, c := range cases {
		s, err := sinks.NewNATS(ctx, "s", sinks.NATSOptions{URL: srv.ClientURL(), Subject: "t.x", Encoding: c.encoding, BatchMaxEvents: c.batch})
		if err != nil {
			t.Fatal(err)
		}
		var batch []pipeline.Event
		for j := range perSink {
			b := codec.AppendMapHeader(nil, 2)
			b = codec.AppendString(codec.AppendString(b, "case"), c.encoding)
			b = codec.AppendUint(codec.AppendString(b, "n"), uint64(i*perSink+j))
			batch = append(batch, pipeline.Event{Data: b, Source: "x", Seq: uint64(j + 1)})
		}
		if c.batch == 0 {
			batch = batch[:2] // two messages; a batching sink sends its three events as one
		}
		if err := s.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
		s.Close(ctx)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("subscribe did not print 6 messages; output so far:\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	seen := map[float64]bool{}
	for _, l := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", l, err)
		}
		seen[ev["n"].(float64)] = true
	}
	// -n counts messages: 2 + 2 single events, then two batches of 3.
	if len(lines) != 10 || len(seen) != 10 {
		t.Errorf("printed %d lines (%d distinct events), want 10:\n%s", len(lines), len(seen), out.String())
	}
}

// TestSubscribeFindsReaderCredentials: against a server that wants NKeys,
// as the embedded one does, `sluice subscribe` uses the reader seed under
// the data directory unasked, and without it says what is missing.
func TestSubscribeFindsReaderCredentials(t *testing.T) {
	dataDir := t.TempDir()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	seedFile := agent.NATSReaderSeedFile(dataDir)
	if err := os.MkdirAll(filepath.Dir(seedFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	defer srv.Shutdown()

	// Without credentials: refused, and the error names the file to read.
	var out testutil.SyncBuffer
	err = cmdSubscribe(t.Context(), []string{"--server", srv.ClientURL(), "--data-dir", t.TempDir(), "-n", "1", "t.>"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "reader.nk") {
		t.Errorf("subscribe without credentials: %v; want an authorization error naming reader.nk", err)
	}

	baseline := srv.NumSubscriptions()
	done := make(chan error, 1)
	go func() {
		done <- cmdSubscribe(t.Context(), []string{"--server", srv.ClientURL(), "--data-dir", dataDir, "-n", "1", "t.>"}, &out, &out)
	}()
	for deadline := time.Now().Add(5 * time.Second); srv.NumSubscriptions() == baseline; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("subscribe never subscribed; output:\n%s", out.String())
		}
	}
	nkeyOpt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL(), nkeyOpt)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b := codec.AppendMapHeader(nil, 1)
	b = codec.AppendString(codec.AppendString(b, "k"), "v")
	nc.Publish("t.x", b)
	nc.Flush()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("subscribe printed nothing; output:\n%s", out.String())
	}
}
