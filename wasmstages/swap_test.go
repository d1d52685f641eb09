package wasmstages_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmstages"
)

// tagVersion returns tag_patchable.wasm patched to stamp version v.
func tagVersion(t testing.TB, v int) []byte {
	t.Helper()
	b, err := testutil.PatchTagVersion(readGuest(t, "tag_patchable"), byte(v))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSwapBetweenBatches drives a four-worker stage the way the pipeline's
// worker does (one goroutine, batch after batch, each split across the
// workers) while another goroutine swaps in 15 versions one after the
// other. Every batch comes out whole, in order, from one version (every
// event of a batch carries the same stage_version and the same stamped
// digest, which name the same version), versions only move forward, no
// call fails (no batch ran on a closed version), and every version that
// was swapped in served.
func TestSwapBetweenBatches(t *testing.T) {
	const versions = 15
	modules := make([][]byte, versions+1)
	digests := map[string]int{}
	for v := 1; v <= versions; v++ {
		modules[v] = tagVersion(t, v)
		digests[wasmstages.ModuleDigest(modules[v])] = v
	}
	reg := pipeline.NewRegistry()
	s := newStage(t, wasmstages.Config{Name: "tag", ModuleBytes: modules[1], Workers: 4, StampVersion: true, Metrics: reg})
	ctx := context.Background()

	var (
		mu     sync.Mutex
		served = map[int]bool{}
	)
	done := make(chan struct{})
	swapErr := make(chan error, 1)
	go func() {
		defer close(done)
		for v := 2; v <= versions; v++ {
			// Let at least one batch run on the current version first.
			for {
				mu.Lock()
				ok := served[v-1]
				mu.Unlock()
				if ok {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if err := s.Swap(ctx, modules[v]); err != nil {
				swapErr <- err
				return
			}
		}
	}()

	var seq uint64
	last := 0
	var out []pipeline.Event
	for batch := 0; ; batch++ {
		in := events(256, "cat")
		for i := range in {
			seq++
			in[i].Seq = seq
		}
		var err error
		out, err = s.Process(ctx, in, out[:0])
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		if len(out) != len(in) {
			t.Fatalf("batch %d: %d events out of %d", batch, len(out), len(in))
		}
		version := -1
		for i, ev := range out {
			if ev.Seq != in[i].Seq {
				t.Fatalf("batch %d: event %d has seq %d, want %d", batch, i, ev.Seq, in[i].Seq)
			}
			m := decode(t, ev.Data)
			v := int(testutil.Int(m["stage_version"]))
			if d := digests[fmt.Sprint(m[wasmstages.StampKey("tag")])]; d != v {
				t.Fatalf("batch %d event %d: stage_version %d, but stamped with the digest of version %d", batch, i, v, d)
			}
			if version == -1 {
				version = v
			} else if v != version {
				t.Fatalf("batch %d is split across versions %d and %d", batch, version, v)
			}
		}
		if version < last {
			t.Fatalf("batch %d ran version %d after version %d", batch, version, last)
		}
		last = version
		mu.Lock()
		served[version] = true
		mu.Unlock()
		select {
		case err := <-swapErr:
			t.Fatal(err)
		case <-done:
			if last == versions {
				if got := reg.Snapshot().Get(wasmstages.MetricReloads, "component", "stage", "name", "tag", "result", wasmstages.ReloadOK); got != versions-1 {
					t.Errorf("reloads{result=ok} = %v, want %d", got, versions-1)
				}
				if r := s.Running(); r.Seq != versions-1 || r.Digest != wasmstages.ModuleDigest(modules[versions]) {
					t.Errorf("Running = %+v; want seq %d and the last version's digest", r, versions-1)
				}
				return
			}
		default:
		}
	}
}

// TestSwapHandsOnLastTick: a filter that reports what it dropped on its
// timer is swapped before its tick; the old version ticks one last time
// and the next Tick hands its summary on, so the drops it counted are not
// lost with its instances.
func TestSwapHandsOnLastTick(t *testing.T) {
	mod := readGuest(t, "filter")
	s := newStage(t, wasmstages.Config{Name: "summary", ModuleBytes: mod, Workers: 2,
		Params: map[string]any{"comms": []string{"cat"}, "summary": true}, Tick: time.Hour})
	ctx := context.Background()
	if out, err := s.Process(ctx, events(100, "cat", "ls"), nil); err != nil || len(out) != 50 {
		t.Fatalf("Process: %d events, %v", len(out), err)
	}
	if err := s.Swap(ctx, testutil.WithCustomSection(mod, "v2", nil)); err != nil {
		t.Fatal(err)
	}
	out, err := s.Tick(ctx, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var dropped uint64
	for _, ev := range out {
		d, _ := decode(t, ev.Data)["dropped"].(uint64)
		dropped += d
	}
	if dropped != 50 {
		t.Errorf("the ticks after the swap report %d dropped events, want the old version's 50", dropped)
	}
	if out, _ := s.Tick(ctx, time.Now(), nil); len(out) != 0 {
		t.Errorf("the next tick emitted %d events again", len(out))
	}
}

// TestStampVersion: with StampVersion every output event carries the
// digest of the version that processed it as one more key, whatever path
// it took (kept by reference, emitted by the guest, from a tick), its
// other keys untouched; a swap, or a new name for the running bytes,
// changes the stamp.
func TestStampVersion(t *testing.T) {
	ctx := context.Background()
	key := wasmstages.StampKey("stamped")
	check := func(t *testing.T, in, out []pipeline.Event, want string) {
		t.Helper()
		for i, ev := range out {
			got := decode(t, ev.Data)
			if got[key] != want {
				t.Fatalf("event %d carries %s = %v, want %q", i, key, got[key], want)
			}
			delete(got, key)
			orig := decode(t, in[i].Data)
			delete(got, "stage_version") // the tag guest's own key
			if diff := cmp.Diff(orig, got); diff != "" {
				t.Fatalf("event %d changed beyond the stamp (-want +got):\n%s", i, diff)
			}
		}
	}
	t.Run("kept", func(t *testing.T) {
		// 15 keys: the stamp makes the 16th, which needs a wider map header.
		s := newStage(t, wasmstages.Config{Name: "stamped", Module: guest("filter"), Params: map[string]any{"comms": []string{"sh"}},
			StampVersion: true, Version: wasmstages.Version{Digest: "sha256:0123", Ref: "localhost:5000/stages/f:v1"}})
		in := events(64, "cat")
		out, err := s.Process(ctx, in, nil)
		if err != nil || len(out) != len(in) {
			t.Fatalf("Process: %d events, %v", len(out), err)
		}
		check(t, in, out, "sha256:0123")
		for i := range in {
			if !bytes.Equal(in[i].Data, openEvent(uint64(i+1), "cat")) {
				t.Fatal("stamping changed the input events' bytes")
			}
		}
		// The same bytes under another name: no reload, a new stamp.
		if err := s.SwapVersion(ctx, readGuest(t, "filter"), wasmstages.Version{Digest: "sha256:4567"}); err != nil {
			t.Fatal(err)
		}
		out, _ = s.Process(ctx, in, out[:0])
		check(t, in, out, "sha256:4567")
		if r := s.Running(); r.Seq != 0 || r.Digest != "sha256:4567" {
			t.Errorf("Running = %+v; want the first version renamed", r)
		}
	})
	t.Run("emitted", func(t *testing.T) {
		v1 := readGuest(t, "tag_v1")
		s := newStage(t, wasmstages.Config{Name: "stamped", ModuleBytes: v1, StampVersion: true})
		in := events(8, "cat")
		out, err := s.Process(ctx, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		check(t, in, out, wasmstages.ModuleDigest(v1))
		v2 := readGuest(t, "tag_v2")
		if err := s.Swap(ctx, v2); err != nil {
			t.Fatal(err)
		}
		out, _ = s.Process(ctx, in, out[:0])
		check(t, in, out, wasmstages.ModuleDigest(v2))
	})
	t.Run("tick", func(t *testing.T) {
		mod := readGuest(t, "filter")
		s := newStage(t, wasmstages.Config{Name: "stamped", ModuleBytes: mod, StampVersion: true,
			Params: map[string]any{"comms": []string{"cat"}, "summary": true}, Tick: time.Hour})
		s.Process(ctx, events(4, "cat"), nil)
		out, err := s.Tick(ctx, time.Now(), nil)
		if err != nil || len(out) != 1 {
			t.Fatalf("Tick: %d events, %v", len(out), err)
		}
		if got := decode(t, out[0].Data); got[key] != wasmstages.ModuleDigest(mod) || got["type"] != "summary" {
			t.Errorf("summary %v lacks the stamp", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		s := newStage(t, wasmstages.Config{Name: "stamped", Module: guest("filter"), Params: map[string]any{"comms": []string{"sh"}}})
		in := events(4, "cat")
		out, _ := s.Process(ctx, in, nil)
		for i := range out {
			if _, ok := decode(t, out[i].Data)[key]; ok || &out[i].Data[0] != &in[i].Data[0] {
				t.Fatal("an event was stamped or copied with StampVersion off")
			}
		}
	})
}

// TestFailuresPerVersion: Failures counts the failed calls of the running
// version only, which is what a rollback decides on.
func TestFailuresPerVersion(t *testing.T) {
	s := newStage(t, wasmstages.Config{Name: "f", ModuleBytes: readGuest(t, "tag_v1")})
	ctx := context.Background()
	if err := s.Swap(ctx, readGuest(t, "trap")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.Process(ctx, events(2, "cat"), nil); pipeline.StageErrorKind(err) != wasmstages.KindTrap {
			t.Fatalf("Process: %v, want a trap", err)
		}
	}
	if seq, n := s.Failures(); seq != 1 || n != 3 {
		t.Errorf("Failures = version %d, %d failed calls; want version 1, 3", seq, n)
	}
	if err := s.Swap(ctx, readGuest(t, "tag_v2")); err != nil {
		t.Fatal(err)
	}
	if seq, n := s.Failures(); seq != 2 || n != 0 {
		t.Errorf("after the next swap, Failures = version %d, %d; want 2, 0", seq, n)
	}
}

// TestReloadResults: each way a version can be refused has its result.
func TestReloadResults(t *testing.T) {
	ctx := context.Background()
	reg := pipeline.NewRegistry()
	s := newStage(t, wasmstages.Config{Name: "r", ModuleBytes: readGuest(t, "tag_v1"), MemoryLimit: 2 << 20, Metrics: reg})
	cases := map[string][]byte{
		wasmstages.ReloadCompile:     []byte("\x00asm\x01\x00\x00\x00\x05garbage"),
		wasmstages.ReloadABI:         readGuest(t, "missing_export"),
		wasmstages.ReloadInit:        readGuest(t, "init_fail"),
		wasmstages.ReloadMemoryLimit: readGuest(t, "gofilter"), // the Go runtime starts with more than 2 MiB
	}
	for _, result := range []string{wasmstages.ReloadCompile, wasmstages.ReloadABI, wasmstages.ReloadInit, wasmstages.ReloadMemoryLimit} {
		err := s.Swap(ctx, cases[result])
		if err == nil {
			t.Fatalf("%s: the swap succeeded", result)
		}
		if got := wasmstages.ReloadResult(err); got != result {
			t.Errorf("ReloadResult(%v) = %s, want %s", err, got, result)
		}
		if got := reg.Snapshot().Get(wasmstages.MetricReloads, "component", "stage", "name", "r", "result", result); got != 1 {
			t.Errorf("reloads{result=%s} = %v, want 1", result, got)
		}
	}
	if !errors.Is(s.Swap(ctx, cases[wasmstages.ReloadMemoryLimit]), wasmstages.ErrMemoryLimit) {
		t.Error("the memory-limit refusal does not wrap ErrMemoryLimit")
	}
	if r := s.Running(); r.Seq != 0 {
		t.Errorf("a refused version runs: %+v", r)
	}
}

// TestInitOverMemoryLimit: a version that grows its memory past the
// stage's limit in sluice_init is refused as memory_limit, whether the
// guest traps when its allocation fails or reports the failure as an
// init error; the running version keeps serving. Under a limit it fits,
// the same module starts and works.
func TestInitOverMemoryLimit(t *testing.T) {
	ctx := context.Background()
	const limit = 4 << 20 // the modules build a 16 MiB table
	for _, name := range []string{"init_bomb", "init_bomb_trap"} {
		t.Run(name, func(t *testing.T) {
			reg := pipeline.NewRegistry()
			s := newStage(t, wasmstages.Config{Name: "r", ModuleBytes: readGuest(t, "tag_v1"), MemoryLimit: limit, Metrics: reg})
			err := s.Swap(ctx, readGuest(t, name))
			if !errors.Is(err, wasmstages.ErrMemoryLimit) || wasmstages.ReloadResult(err) != wasmstages.ReloadMemoryLimit {
				t.Fatalf("Swap = %v (result %s); want a refusal for the memory limit", err, wasmstages.ReloadResult(err))
			}
			for result, want := range map[string]float64{wasmstages.ReloadMemoryLimit: 1, wasmstages.ReloadInit: 0} {
				if got := reg.Snapshot().Get(wasmstages.MetricReloads, "component", "stage", "name", "r", "result", result); got != want {
					t.Errorf("reloads{result=%s} = %v, want %v", result, got, want)
				}
			}
			if r := s.Running(); r.Seq != 0 {
				t.Errorf("the refused version runs: %+v", r)
			}
			out, err := s.Process(ctx, events(3, "cat"), nil)
			if err != nil || len(out) != 3 || fmt.Sprint(decode(t, out[0].Data)["stage_version"]) != "1" {
				t.Errorf("after the refusal, Process = %d events, %v; want version 1's 3 events", len(out), err)
			}

			if _, err := wasmstages.New(ctx, wasmstages.Config{Name: "n", ModuleBytes: readGuest(t, name), MemoryLimit: limit}); !errors.Is(err, wasmstages.ErrMemoryLimit) {
				t.Errorf("New under the limit: %v; want ErrMemoryLimit", err)
			}
			big := newStage(t, wasmstages.Config{Name: "big", ModuleBytes: readGuest(t, name), MemoryLimit: 64 << 20})
			if out, err := big.Process(ctx, events(3, "cat"), nil); err != nil || len(out) != 3 {
				t.Errorf("under a 64 MiB limit: Process = %d events, %v; want the 3 events kept", len(out), err)
			}
		})
	}
}

// TestSwapLargeModule swaps a Go guest in and out of a stage with a cache
// directory: a module that large is compiled aside, in a helper process
// at low priority, whose machine code the stage then loads from the cache,
// and works as any other. A small module, and one the cache holds already,
// is compiled (or loaded) in the process. A large module that does not
// compile is refused as a small one is, as the helper reported it. The
// helper is raised to the agent's priority at once (or, where the test may
// not raise a priority, stopped and the module compiled in the process):
// at nice 10 next to two CPU hogs, a Go guest's compile took a minute.
func TestSwapLargeModule(t *testing.T) {
	defer func(g time.Duration) { *wasmstages.AsideGrace = g }(*wasmstages.AsideGrace)
	*wasmstages.AsideGrace = 0
	ctx := context.Background()
	var logs logBuffer
	cache, err := wasmstages.NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close(ctx) })
	params := map[string]any{"comms": []string{"sh"}}
	s := newStage(t, wasmstages.Config{Name: "f", ModuleBytes: readGuest(t, "filter"), Params: params, Cache: cache, Logger: logs.logger()})
	in := events(4, "cat", "sh", "ls", "bash")
	for i, swap := range []struct {
		guest string
		aside bool
	}{{"gofilter", true}, {"filter", false}, {"gofilter", false}} {
		before := len(logs.lines("compiled aside"))
		if err := s.Swap(ctx, readGuest(t, swap.guest)); err != nil {
			t.Fatalf("swap %d, to %s: %v", i, swap.guest, err)
		}
		aside := logs.lines("compiled aside")[before:]
		switch {
		case swap.aside && (len(aside) != 1 || !strings.Contains(aside[0], `report="nice `) && !strings.Contains(aside[0], "cannot raise it")):
			t.Errorf("swap %d, to %s: logged %q; want one compile aside, raised or stopped", i, swap.guest, aside)
		case !swap.aside && len(aside) > 0:
			t.Errorf("swap %d, to %s: logged %q; want no compile aside", i, swap.guest, aside)
		}
		out, err := s.Process(ctx, in, nil)
		if err != nil || len(out) != 3 {
			t.Errorf("%s: Process = %d events, %v; want the 3 not from sh", swap.guest, len(out), err)
		}
	}
	garbage := append([]byte("\x00asm\x01\x00\x00\x00\x05garbage"), make([]byte, 256<<10)...)
	if err := s.Swap(ctx, garbage); wasmstages.ReloadResult(err) != wasmstages.ReloadCompile {
		t.Errorf("swap in 256 KiB of garbage: %v; want a compile error", err)
	}
	if aside := logs.lines("compiled aside", "error="); len(aside) != 1 || !strings.Contains(aside[0], "compile module") {
		t.Errorf("logged %q; want the helper's compile error", aside)
	}
	if r := s.Running(); r.Seq != 3 {
		t.Errorf("after the refused swap: %+v, want the fourth version running", r)
	}
}
