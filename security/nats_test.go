package security

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// TestDefaultBusRequiresCredentials runs the agent on its built-in default
// config (what `make run` runs; only the data directory and the port are
// moved aside) and attacks its embedded NATS server as another local user
// would: without credentials it gets nothing; with the read-only
// credentials (what `sluice subscribe` uses) it reads events but can
// neither publish a forged one nor delete or purge the stream.
func TestDefaultBusRequiresCredentials(t *testing.T) {
	testutil.RequireBPF(t)
	dataDir := t.TempDir()
	addr := freeAddr(t)
	src := strings.Replace(config.Default, "agent {", fmt.Sprintf("agent {\n  data_dir = %q", dataDir), 1)
	src = strings.ReplaceAll(src, config.DefaultNATSListen, addr)
	f, diags := config.Parse(config.DefaultFilename, []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(diags) > 0 {
		t.Errorf("the default config has warnings: %v", diags)
	}
	var out testutil.SyncBuffer
	a, diags := agent.New(f, agent.Options{Stdout: &out})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	url := "nats://" + addr

	// The reader's credentials appear when the server starts.
	var reader nats.Option
	waitFor(t, errc, "the reader credentials", func() bool {
		var err error
		reader, err = nats.NkeyOptionFromSeed(agent.NATSReaderSeedFile(dataDir))
		return err == nil
	})
	violations := make(chan error, 16)
	var rnc *nats.Conn
	waitFor(t, errc, "a reader connection", func() bool {
		var err error
		rnc, err = nats.Connect(url, reader, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case violations <- err:
			default:
			}
		}))
		return err == nil
	})
	defer rnc.Close()

	// No credentials, no connection.
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Error("an unauthenticated client connected to the default embedded server")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("unauthenticated connect: %v; want an authorization error", err)
	}

	// The agent's sink publishes with its own credentials, unasked: the
	// reader sees a real exec event.
	msgs := make(chan *nats.Msg, 4096)
	if _, err := rnc.ChanSubscribe("sluice.events.>", msgs); err != nil {
		t.Fatal(err)
	}
	rnc.Flush()
	marker := fmt.Sprintf("sluice-sec-%d", rand.Uint32())
	waitFor(t, errc, "the exec event on the bus", func() bool {
		exec.Command("/bin/true", marker).Run()
		for {
			select {
			case m := <-msgs:
				js, _ := codec.AppendJSON(nil, m.Data)
				if strings.Contains(string(js), marker) {
					return true
				}
			default:
				return false
			}
		}
	})

	// Forging an event: refused by the server, in core NATS and JetStream.
	forged := fmt.Sprintf(`{"forged":%q}`, marker)
	rnc.Publish("sluice.events.host.exec", []byte(forged))
	rnc.Flush()
	select {
	case err := <-violations:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("forged publish: %v; want a permissions violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the server did not refuse the reader's forged publish")
	}
	rjs, err := jetstream.New(rnc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rjs.Publish(ctx, "sluice.events.host.exec", []byte(forged)); err == nil {
		t.Error("the reader published a forged event into the stream")
	}
	// Deleting or purging the stream: refused; it still holds the events.
	if err := rjs.DeleteStream(ctx, "SLUICE"); err == nil {
		t.Error("the reader deleted the SLUICE stream")
	}
	stream, err := rjs.Stream(ctx, "SLUICE")
	if err != nil {
		t.Fatalf("the reader cannot look at the stream (a consumer must): %v", err)
	}
	if err := stream.Purge(ctx); err == nil {
		t.Error("the reader purged the SLUICE stream")
	}
	info, err := stream.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		t.Fatalf("stream after the attack: %+v, %v; want it holding the events", info, err)
	}
	// Nothing forged in it: read it all with a reader's consumer.
	cons, err := rjs.OrderedConsumer(ctx, "SLUICE", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("the reader cannot make a consumer: %v", err)
	}
	batch, err := cons.FetchNoWait(int(min(info.State.Msgs, 10000)))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		n++
		if strings.Contains(string(m.Data()), "forged") {
			t.Error("a forged event is in the stream")
		}
	}
	if n == 0 {
		t.Error("the reader's consumer read nothing from the stream")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls cond until it holds, failing the test after 20s or when
// the agent stops.
func waitFor(t *testing.T, errc chan error, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		select {
		case err := <-errc:
			errc <- err // for the deferred stop
			t.Fatalf("the agent stopped before %s: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
