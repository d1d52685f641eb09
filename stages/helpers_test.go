package stages_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/stages"
	"github.com/sluice-dev/sluice/wasmstages"
)

// cache is shared by every test of the package, so each module compiles
// once per run, and kept on disk, so a second run does not compile at all:
// the Go modules take seconds each on a loaded machine.
var cache = func() *wasmstages.Cache {
	c, err := wasmstages.NewCache(filepath.Join(os.TempDir(), "sluice-stages-test-cache"))
	if err != nil {
		panic(err)
	}
	return c
}()

// TestMain compiles every module before the tests, two at a time (the
// machine has two cores), instead of one after the other as tests need them.
func TestMain(m *testing.M) {
	names := append(stages.Names(), "drop-comm-go", "uid-to-user-go", "ocsf-go", "drop-comm-rs")
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			b, ok := stages.Builtin(name)
			if !ok {
				var err error
				if b, err = os.ReadFile(name + ".wasm"); err != nil {
					return // the test that needs it reports it
				}
			}
			// Params are left out: init may fail, the code is compiled and
			// cached before init runs.
			s, err := wasmstages.New(context.Background(), wasmstages.Config{Name: name, ModuleBytes: b, Cache: cache, Timeout: time.Minute})
			if err == nil {
				_ = s.Close(context.Background())
			}
		}()
	}
	wg.Wait()
	os.Exit(m.Run())
}

// module returns a stage's module: a built-in, or the committed file for
// those that are not embedded (the Go and Rust SDK twins of C built-ins).
func module(t testing.TB, name string) []byte {
	t.Helper()
	if b, ok := stages.Builtin(name); ok {
		return b
	}
	b, err := os.ReadFile(filepath.Join(name + ".wasm"))
	if err != nil {
		t.Fatalf("read module %s: %v (run make stages)", name, err)
	}
	return b
}

// newStage loads a stage through the real host runtime.
func newStage(t testing.TB, name string, params map[string]any, tick time.Duration) *wasmstages.Stage {
	t.Helper()
	s, err := newStageErr(t, name, params, tick)
	if err != nil {
		t.Fatalf("load stage %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close stage %s: %v", name, err)
		}
	})
	return s
}

func newStageErr(t testing.TB, name string, params map[string]any, tick time.Duration) (*wasmstages.Stage, error) {
	return wasmstages.New(context.Background(), wasmstages.Config{
		Name:        name,
		ModuleBytes: module(t, name),
		Params:      params,
		// Generous: the first call into a Go guest on a loaded machine is slow.
		Timeout: 10 * time.Second,
		Tick:    tick,
		Cache:   cache,
	})
}

// kv is one field of a synthetic event, in order.
type kv struct {
	k string
	v any
}

// str8 is a string encoded as str 8 whatever its length, as the decoder
// writes timestamps.
type str8 string

// encode lays out an event as the decoder does (ordered keys).
func encode(fields ...kv) []byte {
	b := codec.AppendMapHeader(nil, len(fields))
	for _, f := range fields {
		b = codec.AppendString(b, f.k)
		switch v := f.v.(type) {
		case string:
			b = codec.AppendString(b, v)
		case str8:
			b = append(append(b, 0xd9, byte(len(v))), v...)
		case int:
			b = codec.AppendInt(b, int64(v))
		case []string:
			b = codec.AppendArrayHeader(b, len(v))
			for _, s := range v {
				b = codec.AppendString(b, s)
			}
		default:
			panic("encode: unsupported value")
		}
	}
	return b
}

func envelope(gadget string, seq int, fields ...kv) pipeline.Event {
	all := append([]kv{{"time", "2026-01-02T03:04:05.123456789Z"}, {"host", "node-a"}, {"source", "src"}, {"gadget", gadget}, {"seq", seq}}, fields...)
	return pipeline.Event{Data: encode(all...), Source: "src", Seq: uint64(seq)}
}

func decode(t testing.TB, ev pipeline.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := msgpack.Unmarshal(ev.Data, &m); err != nil {
		t.Fatalf("decode event: %v", err)
	}
	return m
}

func process(t testing.TB, s *wasmstages.Stage, in ...pipeline.Event) []map[string]any {
	t.Helper()
	out, err := s.Process(context.Background(), in, nil)
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	var got []map[string]any
	for _, ev := range out {
		got = append(got, decode(t, ev))
	}
	return got
}

// capture is a sink that keeps what reaches it, decoded.
type capture struct {
	mu     sync.Mutex
	events []map[string]any
}

func (c *capture) Name() string                { return "capture" }
func (c *capture) Close(context.Context) error { return nil }
func (c *capture) Write(_ context.Context, batch []pipeline.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range batch {
		if ev.Kind() != pipeline.KindEvent {
			continue
		}
		var m map[string]any
		if err := msgpack.Unmarshal(ev.Data, &m); err != nil {
			return err
		}
		c.events = append(c.events, m)
	}
	return nil
}

func (c *capture) snapshot() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.events...)
}

// waitFor returns the first captured event match accepts, failing after a
// generous timeout (the machine is shared and loaded).
func (c *capture) waitFor(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range c.snapshot() {
			if match(ev) {
				return ev
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s event within 20s (%d others seen)", what, len(c.snapshot()))
	return nil
}

func hasArg(ev map[string]any, marker string) bool {
	args, _ := ev["args"].([]any)
	for _, a := range args {
		if s, _ := a.(string); strings.Contains(s, marker) {
			return true
		}
	}
	return false
}

type pipelineEvent = pipeline.Event

var toInt = testutil.Int

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func isInit(err error) bool { return errors.Is(err, wasmstages.ErrInit) }
