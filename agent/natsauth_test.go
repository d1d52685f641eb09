package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/config"
)

func TestNATSCredentialsMadeOnceAndPrivate(t *testing.T) {
	dataDir := t.TempDir()
	first, err := loadNATSCredentials(dataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{NATSAgentSeedFile(dataDir), NATSReaderSeedFile(dataDir)} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v; want 0600", p, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(filepath.Dir(NATSAgentSeedFile(dataDir))); st.Mode().Perm() != 0o700 {
		t.Errorf("credentials directory mode = %v; want 0700", st.Mode().Perm())
	}
	if first.agent == first.reader {
		t.Error("the agent and the reader share a key")
	}
	// The next start reuses them (consumers keep working), and a seed
	// opened up by hand is restricted again.
	os.Chmod(NATSReaderSeedFile(dataDir), 0o644)
	second, err := loadNATSCredentials(dataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if *first != *second {
		t.Errorf("credentials changed between two starts: %+v, then %+v", first, second)
	}
	if st, _ := os.Stat(NATSReaderSeedFile(dataDir)); st.Mode().Perm() != 0o600 {
		t.Errorf("reader seed mode after a start = %v; want 0600", st.Mode().Perm())
	}
	// A damaged seed is an error that says what to do, not new keys.
	os.WriteFile(NATSAgentSeedFile(dataDir), []byte("garbage"), 0o600)
	if _, err := loadNATSCredentials(dataDir, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "remove the file") {
		t.Errorf("damaged seed: %v; want an error saying to remove the file", err)
	}
}

func TestSinkTargetsEmbeddedServer(t *testing.T) {
	for _, c := range []struct {
		urls, listen string
		want         bool
	}{
		{"nats://127.0.0.1:4222", "127.0.0.1:4222", true},
		{"nats://localhost:4222", "127.0.0.1:4222", true},
		{"127.0.0.1", "127.0.0.1:4222", true},
		{"nats://[::1]:4222", "0.0.0.0:4222", true},
		{"nats://10.0.0.1:4222,nats://127.0.0.1:4222", "127.0.0.1:4222", true},
		{"nats://10.0.0.1:4222", "10.0.0.1:4222", true},
		{"nats://127.0.0.1:4223", "127.0.0.1:4222", false},
		{"nats://nats.example.com:4222", "127.0.0.1:4222", false},
		{"nats://10.0.0.1:4222", "127.0.0.1:4222", false},
	} {
		if got := targetsEmbedded(c.urls, c.listen); got != c.want {
			t.Errorf("targetsEmbedded(%q, %q) = %v; want %v", c.urls, c.listen, got, c.want)
		}
	}
}

// TestEmbeddedNATSAuth starts the embedded server as the agent does and
// checks who may do what: nobody without credentials, everything with the
// agent's, reading but no publishing or stream changes with the reader's.
func TestEmbeddedNATSAuth(t *testing.T) {
	dataDir := t.TempDir()
	addr := freeAddr(t)
	srv, err := startNATSServer(&config.NATSServer{Listen: addr, JetStream: true, StoreDir: filepath.Join(dataDir, "nats"), Auth: config.NATSAuthNKeys},
		dataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	url := "nats://" + addr

	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("an unauthenticated client was let in")
	} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("unauthenticated connect: %v; want an authorization error", err)
	}

	agentNC := connectSeed(t, url, NATSAgentSeedFile(dataDir), nil)
	ajs, err := jetstream.New(agentNC)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := ajs.CreateStream(ctx, jetstream.StreamConfig{Name: "SLUICE", Subjects: []string{"sluice.>"}}); err != nil {
		t.Fatalf("the agent user cannot create the stream: %v", err)
	}
	if _, err := ajs.Publish(ctx, "sluice.events.h.exec", []byte("real")); err != nil {
		t.Fatalf("the agent user cannot publish: %v", err)
	}

	violations := make(chan error, 8)
	readerNC := connectSeed(t, url, NATSReaderSeedFile(dataDir), violations)
	rjs, err := jetstream.New(readerNC)
	if err != nil {
		t.Fatal(err)
	}
	// Reading works: a consumer sees the real event.
	cons, err := rjs.OrderedConsumer(ctx, "SLUICE", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("the reader cannot make a consumer: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil || string(msg.Data()) != "real" {
		t.Fatalf("the reader's consumer read %v, %v; want the event", msg, err)
	}
	// Forging an event fails, core or JetStream.
	readerNC.Publish("sluice.events.h.exec", []byte("forged"))
	readerNC.Flush()
	select {
	case err := <-violations:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("forged publish: %v; want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the server did not refuse the reader's forged publish")
	}
	if _, err := rjs.Publish(ctx, "sluice.events.h.exec", []byte("forged")); err == nil {
		t.Error("the reader published a forged event into the stream")
	}
	// Deleting or purging the stream fails.
	if err := rjs.DeleteStream(ctx, "SLUICE"); err == nil {
		t.Error("the reader deleted the stream")
	}
	if s, err := rjs.Stream(ctx, "SLUICE"); err == nil {
		if err := s.Purge(ctx); err == nil {
			t.Error("the reader purged the stream")
		}
	}
	info, err := ajs.Stream(ctx, "SLUICE")
	if err != nil {
		t.Fatalf("the stream is gone: %v", err)
	}
	if st, _ := info.Info(ctx); st == nil || st.State.Msgs != 1 {
		t.Errorf("stream state = %+v; want the one real event", st)
	}
}

// connectSeed connects with an NKey seed file; permission errors go to
// violations.
func connectSeed(t *testing.T, url, seedFile string, violations chan<- error) *nats.Conn {
	t.Helper()
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opt, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if violations != nil {
			select {
			case violations <- err:
			default:
			}
		}
	}))
	if err != nil {
		t.Fatal(fmt.Errorf("connect with %s: %w", seedFile, err))
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestEmbeddedCredentialsForOwnConnections: the agent's NATS sinks and its
// control connection use the agent's credentials when they point at the
// embedded server and bring none of their own.
func TestEmbeddedCredentialsForOwnConnections(t *testing.T) {
	dataDir := t.TempDir()
	src := fmt.Sprintf(`agent {
  data_dir = %q
  nats_server { listen = "127.0.0.1:14999" }
  control {
    nats {
      url = %%q
      %%s
    }
  }
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "nats" "own" { url = "nats://localhost:14999" }
sink "nats" "creds" {
  url        = "nats://127.0.0.1:14999"
  creds_file = "/etc/sluice/x.creds"
}
sink "nats" "remote" { url = "nats://nats.example.com:4222" }
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.nats.own, sink.nats.creds, sink.nats.remote]
}
`, dataDir)
	for _, c := range []struct {
		url, extra string
		want       string
	}{
		{"nats://127.0.0.1:14999", "", NATSAgentSeedFile(dataDir)},
		{"nats://127.0.0.1:14999", `nkey_seed_file = "/etc/own.nk"`, "/etc/own.nk"},
		{"nats://nats.example.com:4222", "", ""},
	} {
		f, diags := config.Parse("c.hcl", []byte(fmt.Sprintf(src, c.url, c.extra)))
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if got := embeddedControlAuth(f.Agent).NKeySeedFile; got != c.want {
			t.Errorf("control %s %s: seed %q; want %q", c.url, c.extra, got, c.want)
		}
		if c.extra != "" {
			continue
		}
		for name, want := range map[string]string{"own": NATSAgentSeedFile(dataDir), "creds": "", "remote": ""} {
			var sink *config.Sink
			for _, s := range f.Sinks {
				if s.Name == name {
					sink = s
				}
			}
			if got := embeddedNATSAuth(f, sink.NATS); got != want {
				t.Errorf("sink %s: seed %q; want %q", name, got, want)
			}
		}
	}
}
