package wasmstages_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmstages"
)

// TestWatchFile swaps a stage to a module file's new content: a broken
// version is refused once and the running one stays, a good one is swapped
// in.
func TestWatchFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stage.wasm")
	if err := os.WriteFile(path, readGuest(t, "tag_v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := pipeline.NewRegistry()
	var logs logBuffer
	s := newStage(t, wasmstages.Config{Name: "watched", Module: path, Metrics: reg, Logger: logs.logger()})
	version := func() string {
		out, err := s.Process(context.Background(), events(1, "cat"), nil)
		if err != nil || len(out) != 1 {
			t.Fatalf("Process: %d events, %v", len(out), err)
		}
		return fmt.Sprint(decode(t, out[0].Data)["stage_version"])
	}
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- s.WatchFile(ctx, 5*time.Millisecond) }()
	defer func() {
		cancel()
		if err := <-watched; err != nil {
			t.Errorf("WatchFile: %v", err)
		}
	}()

	// A module that fails its init is refused; the running version stays.
	replace := func(guestName string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, readGuest(t, guestName), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	replace("init_fail")
	waitFor(t, "the refusal", func() bool {
		return reg.Snapshot().Get(wasmstages.MetricReloads, "component", "stage", "name", "watched", "result", wasmstages.ReloadInit) == 1
	})
	if v := version(); v != "1" {
		t.Errorf("version %s after a refused reload, want 1", v)
	}
	time.Sleep(50 * time.Millisecond) // ten more polls of the same broken file
	if got := reg.Snapshot().Get(wasmstages.MetricReloads, "component", "stage", "name", "watched", "result", wasmstages.ReloadInit); got != 1 {
		t.Errorf("the same broken file was tried %v times, want once", got)
	}
	replace("tag_v2")
	waitFor(t, "the swap", func() bool { return version() == "2" })
	if got := reg.Snapshot().Get(wasmstages.MetricReloads, "component", "stage", "name", "watched", "result", wasmstages.ReloadOK); got != 1 {
		t.Errorf("reloads = %v, want 1", got)
	}
	if len(logs.lines("module file changed, but the new version was refused", `param \"threshold\" is required`)) != 1 {
		t.Errorf("the refusal was not logged once with the guest's message; log:\n%s", logs.String())
	}
}

func TestWatchFileNeedsAFile(t *testing.T) {
	s := newStage(t, wasmstages.Config{ModuleBytes: readGuest(t, "tag_v1")})
	if err := s.WatchFile(context.Background(), time.Millisecond); err == nil {
		t.Error("WatchFile of a stage built from bytes did not fail")
	}
	if err := s.Reload(context.Background()); err == nil {
		t.Error("Reload of a stage built from bytes did not fail")
	}
}

// TestTickThroughPipeline runs the filter's summary timer in a pipeline:
// what the guest emits from its tick reaches the sink, counted.
func TestTickThroughPipeline(t *testing.T) {
	reg := pipeline.NewRegistry()
	stage := newStage(t, wasmstages.Config{Name: "summary", Module: guest("filter"),
		Params: map[string]any{"comms": []string{"cat"}, "summary": true}, Tick: 10 * time.Millisecond, Metrics: reg})
	src, sink := &streamSource{}, &memSink{name: "mem"}
	stop := runPipeline(t, pipeline.Spec{Name: "ticks", Sources: []pipeline.Source{src}, Stages: []pipeline.Stage{stage},
		Sinks: []pipeline.Sink{sink}, Queue: pipeline.QueueConfig{Policy: pipeline.Block}, Metrics: reg})
	summaries := func() (n int, dropped uint64) {
		for _, ev := range sink.snapshot() {
			m := decode(t, ev.Data)
			if m["type"] == "summary" {
				n++
				d, _ := m["dropped"].(uint64)
				dropped += d
			}
		}
		return n, dropped
	}
	waitFor(t, "two summaries", func() bool { n, _ := summaries(); return n >= 2 })
	stop()
	// Every event is a cat, so every event was dropped, and the summaries
	// (the last one at shutdown) account for each.
	_, dropped := summaries()
	if total := src.emitted.Load(); dropped != total {
		t.Errorf("summaries report %d dropped events, the source emitted %d", dropped, total)
	}
}
