package agent

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-dev/sluice/internal/natstest"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// TestDerivedEventsReachJetStream runs real exec events through stages that
// derive several events from one input and emit events on their timer into
// real JetStream streams, and counts every event: a flat-map (each exec
// KEPT twice and EMITted once more, three events per input; three events
// per tick) and the built-in rate-limit (its summaries, several per run,
// all from no input). The streams' duplicate windows must drop none of
// them: each stream holds exactly what its sink wrote.
func TestDerivedEventsReachJetStream(t *testing.T) {
	testutil.RequireBPF(t)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	defer srv.Shutdown()

	dir := t.TempDir()
	// A binary of our own, so that its comm is ours alone on a shared machine.
	comm := fmt.Sprintf("rl%d", rand.Uint32N(1e9))
	bin := filepath.Join(dir, comm)
	if data, err := os.ReadFile("/bin/true"); err != nil || os.WriteFile(bin, data, 0o755) != nil {
		t.Fatalf("copy /bin/true: %v", err)
	}
	flatmap, _ := filepath.Abs(filepath.Join("..", "wasmstages", "testdata", "flatmap.wasm"))
	src := fmt.Sprintf(`
agent {
  name           = "derived"
  data_dir       = %q
  shutdown_grace = "10s"
}
source "gadget" "exec_a" { gadget = "trace_exec" }
source "gadget" "exec_b" { gadget = "trace_exec" }
# timeout: not the default 100ms, which a loaded machine can starve a
# call of; a timeout passes the batch on unprocessed (on_error) and
# restarts the instance (the rate limiter's buckets with it).
stage "wasm" "flat" {
  module  = %q
  params  = { copies = 2, tick_events = 3 }
  tick    = "100ms"
  timeout = "10s"
}
stage "wasm" "limit" {
  module  = "rate-limit"
  params  = { key = ["comm"], rate = 0.0001, burst = 1 }
  tick    = "100ms"
  timeout = "10s"
}
sink "nats" "a" {
  url     = %q
  subject = "a.{source}"
  jetstream {
    stream = "A"
    create = true
  }
}
sink "nats" "b" {
  url     = %q
  subject = "b.{source}"
  jetstream {
    stream = "B"
    create = true
  }
}
pipeline "pa" {
  sources = [source.gadget.exec_a]
  stages  = [stage.wasm.flat]
  sinks   = [sink.nats.a]
}
pipeline "pb" {
  sources = [source.gadget.exec_b]
  stages  = [stage.wasm.limit]
  sinks   = [sink.nats.b]
}
`, filepath.Join(dir, "data"), flatmap, srv.ClientURL(), srv.ClientURL())
	f := parseFile(t, dir, src)
	ta := startAgent(t, f, Options{})
	sentA := ta.reg.Component("sink", "a").Sent
	ta.waitFor("tick events written", 20*time.Second, func() {}, func() bool { return sentA.Value() > 0 })

	marker := fmt.Sprintf("sluice-derived-%d", rand.Uint32())
	const execs = 12
	for range execs {
		if err := exec.Command("/bin/true", marker).Run(); err != nil {
			t.Fatal(err)
		}
		if err := exec.Command(bin).Run(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // spread over several ticks: several summaries
	}
	limited := ta.reg.Component("stage", "limit").Dropped("filtered")
	ta.waitFor("the rate limiter to see every exec", 20*time.Second, func() {}, func() bool { return limited.Value() >= execs-1 })
	ta.stop() // the final ticks flush what the stages hold

	a, b := readStream(t, srv.ClientURL(), "A"), readStream(t, srv.ClientURL(), "B")
	for name, msgs := range map[string][][]byte{"a": a, "b": b} {
		if sent := ta.reg.Component("sink", name).Sent.Value(); uint64(len(msgs)) != sent {
			t.Errorf("stream of sink %s holds %d messages; the sink wrote %d", name, len(msgs), sent)
		}
	}
	var marked, ticks int
	for _, m := range a {
		js, _ := codec.AppendJSON(nil, m)
		switch {
		case strings.Contains(string(js), marker):
			marked++
		case strings.Contains(string(js), `"type":"tick"`):
			ticks++
		}
	}
	if marked != 3*execs {
		t.Errorf("stream A holds %d events of the %d marked execs; want 3 each (2 KEEPs, 1 EMIT)", marked, execs)
	}
	if calls := ta.reg.Component("stage", "flat").Counter("sluice_stage_ticks_total", "").Value(); ticks != 3*int(calls) || calls < 2 {
		t.Errorf("stream A holds %d tick events; the stage ticked %d times, 3 events each", ticks, calls)
	}
	var passed, summaries, suppressed int
	for _, m := range b {
		v, _ := codec.Lookup(m, "comm")
		if c, _, _ := codec.ReadString(v); string(c) != comm {
			continue
		}
		if v, ok := codec.Lookup(m, "suppressed"); ok {
			n, _, _ := codec.ReadInt(v)
			summaries++
			suppressed += int(n)
		} else {
			passed++
		}
	}
	if passed != 1 || suppressed != execs-1 || summaries < 2 {
		t.Errorf("stream B: %d %s events passed, %d summaries of %d suppressed; want 1 passed and the other %d in several summaries",
			passed, comm, summaries, suppressed, execs-1)
	}
}

// readStream returns the payload of every message of a stream.
func readStream(t *testing.T, url, stream string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, m := range natstest.StreamMessages(t, url, stream, 30*time.Second) {
		out = append(out, m.Data())
	}
	return out
}
