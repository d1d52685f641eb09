package wasmstages_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/wasmstages"
)

// goDropComm is the drop-comm filter in plain Go, the baseline of
// BenchmarkDropComm: it finds comm in each encoded event (codec.Lookup
// walks the map without decoding it, as the guests do) and keeps the event
// unless comm is listed.
type goDropComm struct{ comms map[string]bool }

func (goDropComm) Name() string                { return "go" }
func (goDropComm) Close(context.Context) error { return nil }
func (s goDropComm) Process(_ context.Context, in, out []pipeline.Event) ([]pipeline.Event, error) {
	for _, ev := range in {
		if raw, ok := codec.Lookup(ev.Data, "comm"); ok {
			if c, _, err := codec.ReadString(raw); err == nil && s.comms[string(c)] {
				continue
			}
		}
		out = append(out, ev)
	}
	return out, nil
}

// goDecodeDropComm decodes each event into a map first, as a filter written
// against a generic msgpack library would.
type goDecodeDropComm struct{ comms map[string]bool }

func (goDecodeDropComm) Name() string                { return "go-decode" }
func (goDecodeDropComm) Close(context.Context) error { return nil }
func (s goDecodeDropComm) Process(_ context.Context, in, out []pipeline.Event) ([]pipeline.Event, error) {
	for _, ev := range in {
		var m map[string]any
		if err := msgpack.NewDecoder(bytes.NewReader(ev.Data)).Decode(&m); err != nil {
			return out, err
		}
		if c, _ := m["comm"].(string); s.comms[c] {
			continue
		}
		out = append(out, ev)
	}
	return out, nil
}

// BenchmarkDropComm measures a drop-comm filter (half the events dropped)
// per event, at several batch sizes: the C guest and the Go guest through
// the stage ABI, and the same filter in plain Go. Compare ns/event within
// one run.
func BenchmarkDropComm(b *testing.B) {
	drop := []string{"sh", "bash"}
	set := map[string]bool{"sh": true, "bash": true}
	stages := []struct {
		name string
		make func(b *testing.B) pipeline.Stage
	}{
		{"wasm-c", func(b *testing.B) pipeline.Stage {
			return newStage(b, wasmstages.Config{Name: "c", Module: guest("filter"), Params: map[string]any{"comms": drop}})
		}},
		{"wasm-go", func(b *testing.B) pipeline.Stage {
			return newStage(b, wasmstages.Config{Name: "go", Module: guest("gofilter"), Params: map[string]any{"comms": drop}})
		}},
		{"go", func(*testing.B) pipeline.Stage { return goDropComm{set} }},
		{"go-decode", func(*testing.B) pipeline.Stage { return goDecodeDropComm{set} }},
	}
	for _, st := range stages {
		b.Run(st.name, func(b *testing.B) {
			stage := st.make(b)
			for _, size := range []int{1, 64, 256, 1024} {
				b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
					in := events(size, "sh", "cat", "bash", "ls")
					out := make([]pipeline.Event, 0, size)
					ctx := context.Background()
					b.SetBytes(int64(len(in[0].Data)))
					b.ReportAllocs()
					for b.Loop() {
						var err error
						if out, err = stage.Process(ctx, in, out[:0]); err != nil {
							b.Fatal(err)
						}
					}
					if size >= 4 && len(out) != size/2 {
						b.Fatalf("kept %d of %d events, want half", len(out), size)
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
				})
			}
		})
	}
}

// BenchmarkEmit measures a stage that rewrites every event (EMIT with one
// more key): the cost of copying results out of the guest.
func BenchmarkEmit(b *testing.B) {
	stage := newStage(b, wasmstages.Config{Name: "tag", Module: guest("tag_v1")})
	in := events(256, "cat")
	out := make([]pipeline.Event, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = stage.Process(context.Background(), in, out[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/event")
}

// BenchmarkStamp measures what StampVersion costs per event: a filter that
// keeps every event (KEEP: passed by reference without the stamp, copied
// once with it) and a guest that rewrites every event (EMIT: copied out of
// the guest, then once more with the stamp). Compare on/off within a run.
func BenchmarkStamp(b *testing.B) {
	for _, g := range []struct {
		name   string
		module string
		params map[string]any
	}{
		{"keep", "filter", map[string]any{"comms": []string{"sh"}}},
		{"emit", "tag_v1", nil},
	} {
		for _, stamp := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/stamp=%t", g.name, stamp), func(b *testing.B) {
				stage := newStage(b, wasmstages.Config{Name: "s", Module: guest(g.module), Params: g.params, StampVersion: stamp})
				in := events(256, "cat")
				out := make([]pipeline.Event, 0, 256)
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if out, err = stage.Process(context.Background(), in, out[:0]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/event")
			})
		}
	}
}

// BenchmarkSwapThroughput runs a pipeline with a version swap after five
// seconds and reports its throughput in 1-second windows: the steady rate
// (the median of the three windows before the swap, after two of warm-up),
// the lowest window from the swap on as a fraction of it, and the windows
// themselves, up to two after the swap is done. The source is saturated
// (as many events as the pipeline takes: the swap's compile competes with
// the pipeline for the CPUs) or paced at a rate well within the stage's
// capacity (1M events/s for the C stage, 300k for the Go one; 3/4 of them
// pass the filter) that a swap must not disturb. cold swaps to a module
// the compilation cache has not seen (a Go stage is compiled aside, in a
// helper process at low priority; saturated-inline compiles it in the
// process, as before, to compare); warm to one it has; none "swaps" to the
// running module, which does nothing: its windows are what the machine's
// other load does to the pipeline, the noise the others must be read
// against. Run it with -benchtime 1x: one iteration is one run of 9 seconds
// or more, and under two CPU hogs to see the compile compete.
func BenchmarkSwapThroughput(b *testing.B) {
	for _, g := range []struct {
		name, guest string
		pace        int
	}{{"c", "filter", 1000000}, {"go", "gofilter", 300000}} {
		for _, cache := range []string{"warm", "cold", "none"} {
			for _, load := range []string{"saturated", "paced", "saturated-inline"} {
				b.Run(g.name+"/"+cache+"/"+load, func(b *testing.B) {
					pace := 0
					if load == "paced" {
						pace = g.pace
					}
					if load == "saturated-inline" {
						defer func(n int) { *wasmstages.AsideMinSize = n }(*wasmstages.AsideMinSize)
						*wasmstages.AsideMinSize = math.MaxInt
					}
					for range b.N {
						swapThroughput(b, readGuest(b, g.guest), cache, pace)
					}
				})
			}
		}
	}
}

// fastSource emits prebuilt batches of 256 events as fast as the edge
// takes them, or at rate events/s when rate is set.
type fastSource struct {
	rate  int
	batch []pipeline.Event
}

func (s *fastSource) Name() string { return "open" }

func (s *fastSource) Run(ctx context.Context, out pipeline.Emitter) error {
	start, sent := time.Now(), 0
	for ctx.Err() == nil {
		if s.rate > 0 {
			if due := int(time.Since(start).Seconds() * float64(s.rate)); sent >= due {
				time.Sleep(200 * time.Microsecond)
				continue
			}
		}
		if err := out.Emit(ctx, s.batch); err != nil {
			return nil
		}
		sent += len(s.batch)
	}
	return nil
}

// countSink counts what reaches it.
type countSink struct{ n atomic.Uint64 }

func (s *countSink) Name() string { return "count" }
func (s *countSink) Write(_ context.Context, batch []pipeline.Event) error {
	s.n.Add(uint64(len(batch)))
	return nil
}
func (s *countSink) Close(context.Context) error { return nil }

func swapThroughput(b *testing.B, module []byte, cache string, pace int) {
	ctx := context.Background()
	cc, err := wasmstages.NewCache(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close(ctx)
	next, wantSeq := testutil.WithCustomSection(module, "next", nil), 1
	if cache == "none" {
		next, wantSeq = module, 0
	}
	cfg := wasmstages.Config{Name: "f", ModuleBytes: module, Params: map[string]any{"comms": []string{"sh"}}, Cache: cc}
	if cache == "warm" {
		// Compile the next version once, so that the swap finds it cached.
		c := cfg
		c.ModuleBytes = next
		if err := wasmstages.Check(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	stage, err := wasmstages.New(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	src := &fastSource{batch: events(256, "cat", "sh", "ls", "bash"), rate: pace}
	sink := &countSink{}
	p, err := pipeline.New(pipeline.Spec{Name: "bench", Sources: []pipeline.Source{src}, Stages: []pipeline.Stage{stage},
		Sinks: []pipeline.Sink{sink}, Queue: pipeline.QueueConfig{Policy: pipeline.Block, MaxEvents: 8192}})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- p.Run(runCtx, 10*time.Second) }()
	// Windows of 1s: two of warm-up, three steady ones, then the swap,
	// the windows until it is done and two more (at least four, at most
	// maxAfter): a swap that waits for CPU must not hide its cost after
	// the last window.
	const warmup, steadyN, minAfter, maxAfter = 2, 3, 4, 70
	var windows []float64
	last := sink.n.Load()
	tick := time.NewTicker(time.Second)
	swapped := make(chan time.Duration, 1)
	for i, doneAt := 0, -1; ; i++ {
		<-tick.C
		n := sink.n.Load()
		if i >= warmup {
			windows = append(windows, float64(n-last))
		}
		last = n
		if i == warmup+steadyN-1 {
			go func() {
				start := time.Now()
				if err := stage.Swap(ctx, next); err != nil {
					b.Error(err)
				}
				swapped <- time.Since(start)
			}()
		}
		after := len(windows) - steadyN
		if doneAt < 0 && after > 0 && len(swapped) > 0 {
			doneAt = after
		}
		if after >= maxAfter || doneAt >= 0 && after >= max(minAfter, doneAt+2) {
			break
		}
	}
	tick.Stop()
	cancel()
	if err := <-ran; err != nil {
		b.Fatal(err)
	}
	if r := stage.Running(); r.Seq != wantSeq || len(swapped) == 0 {
		b.Fatalf("the swap did not finish within %d s: %+v", maxAfter, r)
	}
	pre := slices.Sorted(slices.Values(windows[:steadyN]))
	steady := pre[steadyN/2]
	lowest := slices.Min(windows[steadyN:])
	took := <-swapped
	b.ReportMetric(steady, "events/s")
	b.ReportMetric(lowest/steady, "min-window-ratio")
	b.ReportMetric(float64(took.Milliseconds()), "swap-ms")
	b.Logf("windows (events/s; the swap starts with window %d): %.0f; swap took %s", steadyN+1, windows, took.Round(time.Millisecond))
}

// BenchmarkKeepAll measures a filter that drops nothing, the common case
// of a security filter on benign events: the stage hands its input batch
// back instead of copying it into out.
func BenchmarkKeepAll(b *testing.B) {
	stage := newStage(b, wasmstages.Config{Name: "c", Module: guest("filter"), Params: map[string]any{"comms": []string{"sh"}}})
	in := events(256, "cat", "ls")
	out := make([]pipeline.Event, 0, len(in))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		got, err := stage.Process(ctx, in, out[:0])
		if err != nil || len(got) != len(in) {
			b.Fatalf("kept %d of %d: %v", len(got), len(in), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/event")
}
