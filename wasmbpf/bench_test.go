package wasmbpf

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
)

type discardSink struct{}

func (discardSink) Name() string                                  { return "discard" }
func (discardSink) Write(context.Context, []pipeline.Event) error { return nil }
func (discardSink) Close(context.Context) error                   { return nil }

// BenchmarkRingBufferIntoPipeline compares, in one run, the records per
// second a wasm-bpf application's ring buffer poll brings into a pipeline
// with what the same object brings as a plain gadget (its reader
// goroutine). Each round fills a 32 MiB ring buffer first
// (ringbench.bpf.c: one getppid(2) writes records until a reserve fails)
// and then times the reader draining it, so the reader alone sets the
// rate; the guest's callback only counts. Rounds alternate between the
// two so that drift on a shared machine hits both.
//
//	go test -run '^$' -bench RingBufferIntoPipeline -benchtime 3x ./wasmbpf
func BenchmarkRingBufferIntoPipeline(b *testing.B) {
	testutil.RequireBPF(b)
	elf := testModule(b, "ringbench.bpf.o")
	wasm := testModule(b, "ringbench.wasm")
	pid := strconv.Itoa(os.Getpid())
	const ring = 32 << 20
	var total [2]struct {
		records uint64
		took    time.Duration
	}
	for i := range b.N {
		for _, kind := range [][]int{{0, 1}, {1, 0}}[i%2] {
			var r benchRound
			if kind == 0 {
				spec, err := sources.ParseGadget("ringbench", elf, sources.ParseOptions{})
				if err != nil {
					b.Fatal(err)
				}
				g, err := sources.NewGadget(spec, sources.GadgetConfig{Source: "bench", Host: "h", BufferSize: ring, Params: map[string]string{"target_tgid": pid}})
				if err != nil {
					b.Fatal(err)
				}
				if err := g.Open(); err != nil {
					b.Fatal(err)
				}
				r.src, r.fillFirst = g, true
				r.state = func() *ebpf.Map { m, _ := g.Map("state"); return m }
				r.close = func() { g.Close() }
			} else {
				logs := &logBuffer{}
				app, err := New(context.Background(), Config{Source: "bench", App: "ringbench", Host: "h", Module: wasm, BufferSize: ring, Args: []string{"-p", pid}, Logger: logs.logger()})
				if err != nil {
					b.Fatal(err)
				}
				r.src = app
				r.state = func() *ebpf.Map {
					app.mu.Lock()
					defer app.mu.Unlock()
					for _, o := range app.objects {
						if m, err := o.obj.Map("state"); err == nil {
							return m
						}
					}
					return nil
				}
				r.close = func() {
					if b.Failed() {
						b.Log(logs.String())
					}
					app.Close(context.Background())
				}
			}
			n, took := r.measure(b)
			r.close()
			total[kind].records += n
			total[kind].took += took
		}
	}
	gadget := float64(total[0].records) / total[0].took.Seconds()
	wasmbpf := float64(total[1].records) / total[1].took.Seconds()
	b.ReportMetric(gadget, "gadget-records/s")
	b.ReportMetric(wasmbpf, "wasm-bpf-records/s")
	b.ReportMetric(wasmbpf/gadget, "wasm-bpf/gadget")
	b.ReportMetric(0, "ns/op")
}

// benchRound is one source to measure.
type benchRound struct {
	src       pipeline.Source
	fillFirst bool             // fill the buffer before the pipeline runs (a gadget reads at once)
	state     func() *ebpf.Map // the object's state map, nil until it is loaded
	close     func()
}

type benchState struct {
	Produced uint64
	Full     uint32
	Pad      uint32
}

// fill calls getppid(2) until the object's ring buffer is full and
// returns how many records it holds.
func (r *benchRound) fill(b *testing.B) uint64 {
	var m *ebpf.Map
	for deadline := time.Now().Add(10 * time.Second); m == nil; time.Sleep(time.Millisecond) {
		if m = r.state(); m == nil && time.Now().After(deadline) {
			b.Fatal("the object did not load")
		}
	}
	var st benchState
	for deadline := time.Now().Add(10 * time.Second); st.Full == 0; {
		syscall.Getppid()
		if err := m.Lookup(uint32(0), &st); err != nil {
			b.Fatal(err)
		}
		if time.Now().After(deadline) {
			b.Fatal("the ring buffer did not fill (is the program attached?)")
		}
	}
	return st.Produced
}

// measure fills the ring buffer and returns how many records the source
// brought into a pipeline, and how long it took from the first.
func (r *benchRound) measure(b *testing.B) (uint64, time.Duration) {
	var produced uint64
	if r.fillFirst {
		produced = r.fill(b)
	}
	reg := pipeline.NewRegistry()
	p, err := pipeline.New(pipeline.Spec{
		Name: "bench", Host: "h", Sources: []pipeline.Source{r.src}, Sinks: []pipeline.Sink{discardSink{}},
		Queue:   pipeline.QueueConfig{MaxEvents: 1 << 16, MaxBytes: 256 << 20, Policy: pipeline.DropNewest},
		Metrics: reg,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, time.Second) }()
	if !r.fillFirst {
		produced = r.fill(b)
	}
	received := reg.Component("source", "bench").Received
	var first uint64
	var start time.Time
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := received.Value()
		if n > 0 && start.IsZero() {
			first, start = n, time.Now()
		}
		if n >= produced {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d records arrived within 60s", n, produced)
		}
		time.Sleep(200 * time.Microsecond)
	}
	took := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return produced - first, took
}
