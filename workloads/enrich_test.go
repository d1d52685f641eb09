package workloads

import (
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/podmantest"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
)

// recorder is a sink keeping decoded events.
type recorder struct {
	mu     sync.Mutex
	events []map[string]any
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Write(_ context.Context, batch []pipeline.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range batch {
		var m map[string]any
		if err := msgpack.Unmarshal(ev.Data, &m); err != nil {
			return err
		}
		r.events = append(r.events, m)
	}
	return nil
}
func (r *recorder) Close(context.Context) error { return nil }

func (r *recorder) find(match func(map[string]any) bool) map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if match(ev) {
			return ev
		}
	}
	return nil
}

// TestEnrichExecInContainer runs trace_exec through a pipeline with the
// Enricher: an exec inside a Podman container carries the container's
// identity, an exec on the host carries none.
func TestEnrichExecInContainer(t *testing.T) {
	testutil.RequireBPF(t)
	p := podmantest.Start(t)
	name := uniqueName("enrich")
	c := p.RunContainer(t, name, []string{"--label", "io.kubernetes.pod.name=api-0", "--label", "io.kubernetes.pod.namespace=prod", "--label", "io.kubernetes.container.name=api"})

	b, _ := gadgets.Lookup("trace_exec")
	spec, err := sources.ParseGadget("trace_exec", b.Object, sources.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := sources.NewGadget(spec, sources.GadgetConfig{Source: "exec", Host: "testhost"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Open(); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	reg := pipeline.NewRegistry()
	// The first round runs on demand: the container is unknown until an
	// event from it arrives.
	r := startResolver(t, p, Options{Metrics: reg})
	rec := &recorder{}
	pl, err := pipeline.New(pipeline.Spec{
		Name: "p", Sources: []pipeline.Source{g}, Sinks: []pipeline.Sink{rec},
		Stages:  []pipeline.Stage{NewEnricher("containers", r, 5*time.Second, reg)},
		Queue:   pipeline.QueueConfig{MaxEvents: 4096, Policy: pipeline.Block},
		Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pl.Run(ctx, 5*time.Second) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	marker := uniqueName("inside")
	p.Exec(t, c, "/bin/echo", marker)
	var inside map[string]any
	waitUntil(t, "the exec inside the container", func() bool {
		inside = rec.find(func(ev map[string]any) bool {
			args, _ := ev["args"].([]any)
			return len(args) == 2 && args[1] == marker
		})
		return inside != nil
	})
	got := map[string]any{}
	for _, k := range []string{FieldContainerID, FieldContainerName, FieldContainerImage, FieldContainerRuntime, FieldK8sNamespace, FieldK8sPod, FieldK8sContainer} {
		got[k] = inside[k]
	}
	want := map[string]any{
		FieldContainerID: c.ID, FieldContainerName: name, FieldContainerImage: podmantest.Image, FieldContainerRuntime: "podman",
		FieldK8sNamespace: "prod", FieldK8sPod: "api-0", FieldK8sContainer: "api",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("exec in the container: %s = %v, want %v", k, got[k], v)
		}
	}

	hostMarker := uniqueName("host")
	if err := runHost("/bin/echo", hostMarker); err != nil {
		t.Fatal(err)
	}
	var host map[string]any
	waitUntil(t, "the exec on the host", func() bool {
		host = rec.find(func(ev map[string]any) bool {
			args, _ := ev["args"].([]any)
			return len(args) == 2 && args[1] == hostMarker
		})
		return host != nil
	})
	for k := range want {
		if v, ok := host[k]; ok {
			t.Errorf("exec on the host has %s = %v", k, v)
		}
	}
}

func runHost(name string, args ...string) error {
	return exec.Command(name, args...).Run()
}

// BenchmarkEnricher measures the per-event cost of a batch of 256 events
// whose namespaces are known: host events pass, container events are
// copied with the fields appended.
func BenchmarkEnricher(b *testing.B) {
	r := NewResolver(Options{})
	c := newContainer(RuntimeContainer{ID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Name: "web", Image: "nginx:1.27"}, "podman")
	c.MntNS = 4026532999
	r.snap.Store(&snapshot{byMntNS: map[uint64]*Container{c.MntNS: c}, none: map[uint64]bool{4026531840: true}})
	data := make([]byte, 0, 300)
	data = append(data, 0x8c) // a 12-field event
	for i := range 12 {
		data = append(data, 0xa4, 'k', 'e', 'y', byte('a'+i), 0xcd, 0x12, 0x34)
	}
	for _, tc := range []struct {
		name string
		ns   uint64
	}{{"host", 4026531840}, {"container", c.MntNS}} {
		b.Run(tc.name, func(b *testing.B) {
			e := NewEnricher("containers", r, time.Millisecond, nil)
			in := make([]pipeline.Event, 256)
			for i := range in {
				in[i] = pipeline.Event{Data: data, MntNS: uint32(tc.ns)}
			}
			out := make([]pipeline.Event, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				out, _ = e.Process(context.Background(), in, out[:0])
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/event")
		})
	}
}
