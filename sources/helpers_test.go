package sources

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
)

// collector is an Emitter that keeps decoded events for assertions.
type collector struct {
	gate     chan struct{} // when set, Emit waits until it is closed
	mu       sync.Mutex
	events   []map[string]any
	raw      []pipeline.Event
	lost     uint64
	filtered uint64
}

func (c *collector) Emit(ctx context.Context, batch []pipeline.Event) error {
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range batch {
		var m map[string]any
		if err := msgpack.Unmarshal(ev.Data, &m); err != nil {
			panic(err)
		}
		c.events = append(c.events, m)
		c.raw = append(c.raw, ev)
	}
	return nil
}

func (c *collector) ReportLoss(_, _, _ string, n uint64) {
	c.mu.Lock()
	c.lost += n
	c.mu.Unlock()
}

func (c *collector) ReportFiltered(_ string, n uint64) {
	c.mu.Lock()
	c.filtered += n
	c.mu.Unlock()
}

// waitFor returns the first event match accepts, failing after a timeout.
func (c *collector) waitFor(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, ev := range c.events {
			if match(ev) {
				c.mu.Unlock()
				return ev
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	n := len(c.events)
	c.mu.Unlock()
	t.Fatalf("no %s event within 5s (%d other events seen)", what, n)
	return nil
}

// snapshot returns the events collected so far.
func (c *collector) snapshot() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.events...)
}

// startGadget opens a built-in or test gadget and runs it into a collector
// until the test ends.
func startGadget(t *testing.T, name string, elf []byte, opts ParseOptions, params map[string]string) (*Gadget, *collector) {
	t.Helper()
	return startGadgetWith(t, name, elf, opts, GadgetConfig{Params: params}, &collector{})
}

// startGadgetWith is startGadget with a full config and a given collector.
func startGadgetWith(t *testing.T, name string, elf []byte, opts ParseOptions, cfg GadgetConfig, c *collector) (*Gadget, *collector) {
	t.Helper()
	testutil.RequireBPF(t)
	if elf == nil {
		b, ok := gadgets.Lookup(name)
		if !ok {
			t.Fatalf("no built-in gadget %q", name)
		}
		elf = b.Object
	}
	spec, err := ParseGadget(name, elf, opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Source, cfg.Host = name+"-src", "testhost"
	g, err := NewGadget(spec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Open(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if err := g.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return g, c
}

var num = testutil.Int
