package wasmstages_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/wasmstages"
)

// guest returns the path of a test guest built by testdata/build.sh.
func guest(name string) string { return filepath.Join("testdata", name+".wasm") }

// openEvent encodes an event shaped like trace_open's: the envelope, then
// fifteen fields, comm among them.
func openEvent(seq uint64, comm string) []byte {
	b := codec.AppendMapHeader(nil, 15)
	kv := func(k, v string) { b = codec.AppendString(codec.AppendString(b, k), v) }
	ku := func(k string, v uint64) { b = codec.AppendUint(codec.AppendString(b, k), v) }
	kv("time", "2025-01-01T00:00:00.123456789Z")
	kv("host", "node-a")
	kv("source", "open")
	kv("gadget", "trace_open")
	ku("seq", seq)
	ku("pid", 4242)
	ku("uid", 1000)
	kv("comm", comm)
	kv("path", "/etc/ld.so.cache")
	kv("flags", "O_RDONLY|O_CLOEXEC")
	ku("flags_raw", 0o2000000)
	kv("mode", "----------")
	ku("mode_raw", 0)
	ku("ret", 3)
	kv("ret_error", "")
	return b
}

var testSchema = &pipeline.Schema{Gadget: "trace_open", Type: "event"}

// events returns n events from source "open", seq from 1, whose comm
// cycles through comms.
func events(n int, comms ...string) []pipeline.Event {
	out := make([]pipeline.Event, n)
	for i := range out {
		seq := uint64(i + 1)
		out[i] = pipeline.Event{Data: openEvent(seq, comms[i%len(comms)]), Schema: testSchema, Source: "open", Seq: seq}
	}
	return out
}

// decode decodes an event's Data into a map.
func decode(t testing.TB, data []byte) map[string]any {
	t.Helper()
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	dec.UseLooseInterfaceDecoding(true)
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode event: %v", err)
	}
	return m
}

func comms(t testing.TB, evs []pipeline.Event) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		c, _ := decode(t, ev.Data)["comm"].(string)
		out = append(out, c)
	}
	return out
}

// logBuffer collects log lines from concurrent loggers.
type logBuffer struct{ testutil.SyncBuffer }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines returns the logged lines that contain every one of parts.
func (l *logBuffer) lines(parts ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok && line != "" {
			out = append(out, line)
		}
	}
	return out
}

// newStage builds a stage and closes it when the test ends.
func newStage(t testing.TB, cfg wasmstages.Config) *wasmstages.Stage {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	if cfg.Timeout == 0 {
		// Tests that do not test the deadline must not trip over it on a
		// loaded machine or under the race detector.
		cfg.Timeout = 10 * time.Second
	}
	s, err := wasmstages.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func readGuest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(guest(name))
	if err != nil {
		t.Fatalf("read test guest (run wasmstages/testdata/build.sh): %v", err)
	}
	return b
}
