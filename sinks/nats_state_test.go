package sinks

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
)

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNATSConnectionStateSpeaks: a sink whose server is not there at start
// says so in the log (with the reason), counts an error, shows 0 in
// sluice_sink_connected, reports itself unhealthy with what it spools, and
// tells spooled events from delivered ones; once the server is there it
// logs the connection, the gauge reads 1, the spool drains and the sink is
// healthy; a disconnection is logged with its reason and flips them back.
func TestNATSConnectionStateSpeaks(t *testing.T) {
	var logs testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	port := freePort(t)
	reg := pipeline.NewRegistry()
	s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: fmt.Sprintf("nats://127.0.0.1:%d", port), Subject: "sluice.{source}",
		Host: "h1", SpoolDir: t.TempDir(), Metrics: reg, Logger: log, JetStream: &JetStreamOptions{Stream: "SLUICE", Create: true}})
	if err != nil {
		t.Fatalf("a sink with a spool starts while its server is down: %v", err)
	}
	defer s.Close(context.Background())
	connected := reg.Component("sink", "siem").Gauge("sluice_sink_connected", "")
	errs := reg.Component("sink", "siem").Errors
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	waitUntil(t, "the unreachable server logged with its reason", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "unreachable") && strings.Contains(logs.String(), "connection refused")
	})
	if connected.Value() != 0 || errs.Value() == 0 {
		t.Errorf("sluice_sink_connected = %d, errors = %d; want 0 and at least 1", connected.Value(), errs.Value())
	}
	batch := []pipeline.Event{numberedEvent("exec", 1, 1), numberedEvent("exec", 2, 2)}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	health := s.Health()
	if health == nil || !strings.Contains(health.Error(), "not connected") || !strings.Contains(health.Error(), "spooling") {
		t.Errorf("Health() = %v; want not connected, spooling", health)
	}
	if got := s.Spooled(); got != 2 {
		t.Errorf("Spooled() = %d, want the 2 events written", got)
	}
	if !strings.Contains(logs.String(), "spooling") {
		t.Errorf("no log says the sink spools:\n%s", logs.String())
	}

	srv := startServer(t, &server.Options{JetStream: true, Port: port})
	waitUntil(t, "connected, spool replayed", 20*time.Second, func() bool {
		return connected.Value() == 1 && s.spool.Len() == 0 && s.Health() == nil
	})
	if s.Spooled() != 0 || !strings.Contains(logs.String(), "nats connected") || !strings.Contains(logs.String(), "spool replayed") {
		t.Errorf("Spooled() = %d; logs:\n%s", s.Spooled(), logs.String())
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	waitUntil(t, "disconnection noticed", 10*time.Second, func() bool {
		return connected.Value() == 0 && s.Health() != nil
	})
	if !strings.Contains(logs.String(), "nats disconnected") {
		t.Errorf("the disconnection is not logged:\n%s", logs.String())
	}
}

// TestNATSCloseHonoursDeadline: a sink replaying a large spool into a
// server that stops answering mid-replay (its connection frozen, not
// closed) must still close within the deadline its context gives. The
// replayer used to publish on, stalling for every message once the
// acknowledgements stopped, without looking at its context.
func TestNATSCloseHonoursDeadline(t *testing.T) {
	srv := startServer(t, &server.Options{JetStream: true})
	proxy := newFreezingProxy(t, srv.Addr().String())
	s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: "nats://" + proxy.addr(), Subject: "sluice.{source}", Host: "h1",
		SpoolDir: t.TempDir(), SpoolMaxBytes: 16 << 20, // segments of 2 MiB
		JetStream: &JetStreamOptions{Stream: "SLUICE", Create: true, AckTimeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	proxy.freeze()
	// The first write times out and is spooled; the rest queue behind it,
	// in two segments.
	writeNumbered(t, s, 1, 40_000, 0, nil)
	if s.spool.Len() == 0 {
		t.Fatal("nothing was spooled")
	}
	proxy.thaw()
	// The first segment delivered: the second is being replayed.
	waitUntil(t, "the replay under way", 20*time.Second, func() bool { return s.replayed.Value() > 0 })
	proxy.freeze()
	if s.spool.Len() == 0 {
		t.Fatal("the replay finished before the server froze")
	}
	const deadline = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Close(ctx) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return within 30s")
	}
	if took := time.Since(start); took > deadline+time.Second {
		t.Errorf("Close took %s with a %s deadline", took, deadline)
	}
}

// TestNATSCoreCloseWithFrozenServer: core NATS, a server that stopped
// reading with messages still in the client's buffer: Close returns within
// its deadline and says what may be lost, instead of waiting out the
// client's flush.
func TestNATSCoreCloseWithFrozenServer(t *testing.T) {
	srv := startServer(t, nil)
	proxy := newFreezingProxy(t, srv.Addr().String())
	s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: "nats://" + proxy.addr(), Subject: "sluice.{source}", Host: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	proxy.freeze()
	// Enough to fill the socket buffers on both sides of the proxy.
	for i := range 20 {
		batch := make([]pipeline.Event, 0, 256)
		for j := range 256 {
			batch = append(batch, bigEvent("exec", uint64(i*256+j+1), 0, 512))
		}
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	const deadline = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Close(ctx) }()
	var closeErr error
	select {
	case closeErr = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("Close did not return within 90s")
	}
	if took := time.Since(start); took > deadline+time.Second {
		t.Errorf("Close took %s with a %s deadline", took, deadline)
	}
	if closeErr == nil || !strings.Contains(closeErr.Error(), "may be lost") {
		t.Errorf("Close: %v; want an error saying buffered messages may be lost", closeErr)
	}
}
