package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/synth"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
)

// TestStalledSinkDropOldestBoundsMemory runs the synthetic producer flat
// out into a stdout sink whose pipe nobody reads (its write blocks for
// good) under when_full = "drop_oldest": far more events than the queues
// hold pass through and are dropped, and the agent's live heap grows by no
// more than the two queues' byte bounds (the pipeline's edge and the
// sink's) plus a fixed overhead. Then the agent stops although its sink
// never returns from its write.
func TestStalledSinkDropOldestBoundsMemory(t *testing.T) {
	testutil.RequireBPF(t)
	root, err := synth.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	const queueBytes = 4 << 20
	src := fmt.Sprintf(`
agent {
  data_dir       = %q
  shutdown_grace = "1s"
  filter_self    = false # the producer is this process
}
source "gadget" "synth" {
  gadget = %q
  params = { target_tgid = %d }
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.synth]
  sinks   = [sink.stdout.out]
  queue {
    max_events = 100000
    max_bytes  = "%dB"
    when_full  = "drop_oldest"
  }
}
`, t.TempDir(), filepath.Join(root, synth.Object(64)), os.Getpid(), queueBytes)
	reg, stop := runOnStalledStdout(t, "bounds.hcl", src, 30*time.Second)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	sinkM := reg.Component("sink", "out")
	prod := &synth.Producer{}
	pctx, stopProd := context.WithCancel(context.Background())
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		prod.Run(pctx)
	}()
	// 20 times what the sink queue can hold, dropped at the sink: what an
	// unbounded buffer would keep is hundreds of MB.
	const through = 20 * queueBytes / 64
	waitUntil(t, fmt.Sprintf("%d events dropped for a full queue", through), 60*time.Second, func() bool {
		return sinkM.Dropped(pipeline.ReasonQueueFull).Value() >= through
	})
	stopProd()
	<-produced

	// The stuck batch and its JSON, ring arrays, arenas in flight, and
	// the readers' arena pool at its idle size. Right after a burst the
	// GC's finalizers refill the pool with the dropped events' arenas, up
	// to four times that, until the idle reader trims it and the next
	// cycle frees the rest: the heap is measured once it has settled,
	// and a heap that keeps what it should not never does.
	const overhead = 16 << 20
	bound := int64(2*queueBytes + overhead)
	var grew int64
	settled := func() bool {
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		grew = int64(after.HeapAlloc) - int64(before.HeapAlloc)
		return grew <= bound
	}
	deadline := time.Now().Add(10 * time.Second)
	for !settled() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // a few of the idle reader's poll intervals
	}
	t.Logf("%d events dropped at the sink; live heap grew by %.1f MB (bound %.1f MB)", sinkM.Dropped(pipeline.ReasonQueueFull).Value(),
		float64(grew)/(1<<20), float64(bound)/(1<<20))
	if grew > bound {
		t.Errorf("live heap grew by %d bytes with a stalled sink and did not come down within 10s; bound: the queues' (2 x %d) + %d", grew, queueBytes, overhead)
	}

	stop()
	// Every event is accounted for once the agent has stopped.
	for _, c := range [][2]string{{"source", "synth"}, {"pipeline", "p"}, {"sink", "out"}} {
		m := reg.Component(c[0], c[1])
		if r, s, d := m.Received.Value(), m.Sent.Value(), m.DroppedTotal(); r != s+d {
			t.Errorf("%s/%s: received %d != sent %d + dropped %d", c[0], c[1], r, s, d)
		}
	}
}

// runOnStalledStdout runs the agent of config src with its stdout a pipe
// nobody reads: once the pipe's buffer is full, the stdout sink's write
// blocks until the pipe closes at the end of the test. It returns once the
// agent is ready, with its metrics and a stop that cancels it and fails the
// test unless it stops within a minute, its sink stuck in a write.
func runOnStalledStdout(t *testing.T, name, src string, ready time.Duration) (*pipeline.Registry, func()) {
	t.Helper()
	f, diags := config.Parse(name, []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	f.Agent.ControlSocket = ""
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close(); pw.Close() })
	reg := pipeline.NewRegistry()
	a, diags := New(f, Options{Stdout: pw, Metrics: reg})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	waitUntil(t, "the agent to run", ready, func() bool {
		a.health.mu.Lock()
		defer a.health.mu.Unlock()
		return a.health.ready
	})
	stop := func() {
		t.Helper()
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Logf("Run: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("the agent did not stop with its sink stuck in a write")
		}
	}
	return reg, stop
}

// waitUntil polls cond until it holds or the timeout passes.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHugeStageOutputBoundsMemory runs the synthetic producer through a
// stage that answers every batch with far more than it was given, into a
// sink that never takes anything (a pipe nobody reads): outputs larger
// than the stage's memory_limit are refused (oom, the batch dropped and
// counted), the rest (many times the input, within the limit) piles up in
// the sink's queue, whose byte bound drops the excess. The live heap grows
// by no more than the memory limit and the queues' bounds plus a fixed
// overhead, however much the stage produces.
func TestHugeStageOutputBoundsMemory(t *testing.T) {
	testutil.RequireBPF(t)
	root, err := synth.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	const queueBytes, memLimit = 4 << 20, 16 << 20
	for _, c := range []struct {
		name        string
		events, pad int // what the stage emits per batch: events of pad bytes
		oom         bool
	}{
		// 400 KB per batch of 256 inputs, ~100x its input: fits the limit.
		{"many times its input", 400, 1 << 10, false},
		// 32 MB per batch: over the memory limit, refused.
		{"more than its memory limit", 2000, 16 << 10, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := fmt.Sprintf(`
agent {
  data_dir       = %q
  shutdown_grace = "1s"
  filter_self    = false # the producer is this process
}
source "gadget" "synth" {
  gadget = %q
  params = { target_tgid = %d }
}
stage "wasm" "flood" {
  module       = %q
  params       = { events = %d, bytes = %d }
  memory_limit = "%dB"
  on_error     = "drop"
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.synth]
  stages  = [stage.wasm.flood]
  sinks   = [sink.stdout.out]
  queue {
    max_events = 100000
    max_bytes  = "%dB"
    when_full  = "drop_oldest"
  }
}
`, t.TempDir(), filepath.Join(root, synth.Object(64)), os.Getpid(), filepath.Join(root, "wasmstages", "testdata", "outbomb.wasm"),
				c.events, c.pad, memLimit, queueBytes)
			reg, stop := runOnStalledStdout(t, "flood.hcl", src, time.Minute)
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)

			stage, sink := reg.Component("stage", "flood"), reg.Component("sink", "out")
			prod := &synth.Producer{Rate: 20000}
			pctx, stopProd := context.WithCancel(context.Background())
			produced := make(chan struct{})
			go func() {
				defer close(produced)
				prod.Run(pctx)
			}()
			// Enough output to overflow the bounds many times over.
			waitUntil(t, "the stage's output to overflow", time.Minute, func() bool {
				if c.oom {
					return stage.Dropped(pipeline.ReasonStageError).Value() >= 20*256
				}
				return sink.Dropped(pipeline.ReasonQueueFull).Value() >= 20*queueBytes/(1<<10)
			})
			stopProd()
			<-produced
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			const overhead = 24 << 20
			bound := int64(memLimit + 2*queueBytes + overhead)
			grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("stage dropped %d (oom), sink dropped %d (queue full); live heap grew by %.1f MB (bound %.1f MB)",
				stage.Dropped(pipeline.ReasonStageError).Value(), sink.Dropped(pipeline.ReasonQueueFull).Value(), float64(grew)/(1<<20), float64(bound)/(1<<20))
			if grew > bound {
				t.Errorf("live heap grew by %d bytes, more than the memory limit and the queues' bounds allow (%d)", grew, bound)
			}
			if got := reg.Snapshot().Get(pipeline.MetricStageErrors, "component", "stage", "name", "flood", "kind", "oom"); c.oom && got == 0 {
				t.Errorf("no oom counted for outputs over the memory limit")
			}
			stop()
		})
	}
}
