package wasmstages_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

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
