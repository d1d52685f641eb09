package wasmstages_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmstages"
)

// TestOutputCountsAgainstMemoryLimit: what the host copies out of a guest
// (emitted payloads, and an Event per entry) counts against the stage's
// memory limit with the guest's own memory. A memory_limit of 1GiB let the
// agent reach 4.6GB: the guest handed back its memory as output, or KEEPed
// one input millions of times.
func TestOutputCountsAgainstMemoryLimit(t *testing.T) {
	const limit = 32 << 20
	for _, c := range []struct {
		name    string
		params  map[string]any
		wantOOM bool
	}{
		{"emitted payloads as large as the memory", map[string]any{"events": 1, "bytes": 12 << 20}, true},
		{"one input kept a million times", map[string]any{"keeps": 1_000_000}, true},
		{"an ordinary output", map[string]any{"events": 10, "bytes": 1000, "keeps": 3}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := pipeline.NewRegistry()
			s := newStage(t, wasmstages.Config{Name: "outbomb", Module: guest("outbomb"), MemoryLimit: limit, Params: c.params, Metrics: reg})
			out, err := s.Process(context.Background(), events(4, "a"), nil)
			if !c.wantOOM {
				if err != nil || len(out) != 13 {
					t.Fatalf("Process = %d events, %v; want 13 events", len(out), err)
				}
				return
			}
			var se *pipeline.StageError
			if !errors.As(err, &se) || se.Kind != wasmstages.KindOOM {
				t.Fatalf("Process = %d events, %v; want a %q error", len(out), err, wasmstages.KindOOM)
			}
			if len(out) != 0 {
				t.Errorf("a refused output still produced %d events", len(out))
			}
			if !strings.Contains(err.Error(), "the output") || !strings.Contains(err.Error(), "memory limit") {
				t.Errorf("error %q does not say the output exceeds the memory limit", err)
			}
			// The instance was discarded; the next batch gets a fresh one.
			if _, err := s.Process(context.Background(), events(1, "a"), nil); err == nil {
				t.Error("the flood stopped by itself?")
			}
			if got := restarts(reg, "outbomb"); got != 1 {
				t.Errorf("instance restarts = %v; want 1", got)
			}
		})
	}
}

// residentBytes is the process's resident set size.
func residentBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// TestMemoryReturnedAfterBomb: an instance that filled its memory and was
// discarded gives the memory back to the kernel at once. Kept in the Go
// heap, the memory of a bomb stayed in the agent's resident set.
func TestMemoryReturnedAfterBomb(t *testing.T) {
	const limit = 256 << 20
	s := newStage(t, wasmstages.Config{Name: "bomb", Module: guest("bomb"), MemoryLimit: limit})
	before := residentBytes(t)
	_, err := s.Process(context.Background(), events(1, "a"), nil)
	var se *pipeline.StageError
	if !errors.As(err, &se) || se.Kind != wasmstages.KindOOM {
		t.Fatalf("Process: %v; want %q", err, wasmstages.KindOOM)
	}
	after := residentBytes(t)
	t.Logf("resident: %d MiB before the bomb, %d MiB after", before>>20, after>>20)
	if grew := after - before; grew > limit/4 {
		t.Errorf("the process kept %d MiB after the %d MiB bomb was discarded", grew>>20, limit>>20)
	}
}
