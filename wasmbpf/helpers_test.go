package wasmbpf

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
)

// collector is an Emitter that keeps decoded events for assertions.
type collector struct {
	mu     sync.Mutex
	events []map[string]any
	lost   uint64
	count  int
	keep   bool
}

func newCollector() *collector { return &collector{keep: true} }

func (c *collector) Emit(_ context.Context, batch []pipeline.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count += len(batch)
	if !c.keep {
		return nil
	}
	for _, ev := range batch {
		var m map[string]any
		if err := msgpack.Unmarshal(ev.Data, &m); err != nil {
			panic(err)
		}
		if ev.Schema == nil || ev.Source == "" || ev.Seq == 0 {
			panic("an event without its schema, source or seq")
		}
		c.events = append(c.events, m)
	}
	return nil
}

func (c *collector) ReportLoss(_, _, _ string, n uint64) {
	c.mu.Lock()
	c.lost += n
	c.mu.Unlock()
}

func (c *collector) snapshot() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

func (c *collector) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

// waitFor returns the first event match accepts, failing after 10s.
func (c *collector) waitFor(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	eventually(t, 10*time.Second, what, func() bool {
		for _, ev := range c.snapshot() {
			if match(ev) {
				got = ev
				return true
			}
		}
		return false
	})
	return got
}

// eventually waits until cond holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer is the text of a logger's records.
type logBuffer struct{ testutil.SyncBuffer }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&l.SyncBuffer, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logBuffer) waitFor(t *testing.T, text string) {
	t.Helper()
	eventually(t, 10*time.Second, "log line with "+text, func() bool { return strings.Contains(l.String(), text) })
}

func testModule(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// running is an App running in a test.
type running struct {
	app    *App
	c      *collector
	log    *logBuffer
	reg    *pipeline.Registry
	cancel context.CancelFunc
	done   chan error
	err    error
	ended  bool
}

// startApp runs the test application name under the config cfg (Module,
// Source, App, Logger and Metrics filled in) into a collector.
func startApp(t *testing.T, name string, cfg Config) *running {
	t.Helper()
	testutil.RequireBPF(t)
	r := &running{c: newCollector(), log: &logBuffer{}, reg: pipeline.NewRegistry(), done: make(chan error, 1)}
	cfg.Module = testModule(t, name+".wasm")
	if cfg.Source == "" {
		cfg.Source = name + "-src"
	}
	cfg.App, cfg.Host, cfg.Logger, cfg.Metrics = name, "testhost", r.log.logger(), r.reg
	app, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.app = app
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- app.Run(ctx, r.c) }()
	t.Cleanup(func() {
		r.stop(t)
		if err := app.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() || testing.Verbose() && os.Getenv("SLUICE_TEST_LOG") != "" {
			t.Logf("log of %s:\n%s", name, r.log.String())
		}
	})
	return r
}

// stop cancels the app and waits for Run, returning its error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	if r.ended {
		return r.err
	}
	r.cancel()
	select {
	case r.err = <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of the stop")
	}
	r.ended = true
	return r.err
}

// wait waits for Run to return on its own.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case r.err = <-r.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the application did not end within 20s")
	}
	r.ended = true
	return r.err
}

func (r *running) metric(name string, labels ...string) float64 {
	return r.reg.Snapshot().Get(name, labels...)
}

// ourLinks returns the IDs of the links this process holds whose program
// is named one of names (as the kernel keeps them: at most 15 bytes).
// Only this process's: another package's test may attach the same
// programs meanwhile.
func ourLinks(t *testing.T, names ...string) []link.ID {
	t.Helper()
	held := testutil.HeldLinks(t)
	var ids []link.ID
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue
		}
		if !held[it.ID] {
			continue
		}
		prog, err := ebpf.NewProgramFromID(info.Program)
		if err != nil {
			continue
		}
		pi, err := prog.Info()
		prog.Close()
		if err != nil {
			continue
		}
		for _, n := range names {
			if pi.Name == n[:min(len(n), 15)] {
				ids = append(ids, it.ID)
			}
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// linksGone waits until none of ids is attached any more.
func linksGone(t *testing.T, ids []link.ID) {
	t.Helper()
	eventually(t, 10*time.Second, "detach of every program", func() bool {
		for _, id := range ids {
			l, err := link.NewFromID(id)
			if err == nil {
				l.Close()
				return false
			}
		}
		return true
	})
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

var num = testutil.Int
