package wasmstages_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/wasmstages"
)

// loadWithCache starts a stage on module with a fresh Cache over dir, so
// that nothing but the directory carries over from an earlier load, and
// returns how long New took.
func loadWithCache(t *testing.T, dir string, module []byte) time.Duration {
	t.Helper()
	cache, err := wasmstages.NewCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close(context.Background())
	start := time.Now()
	s, err := wasmstages.New(context.Background(), wasmstages.Config{Name: "cached", ModuleBytes: module, Cache: cache})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return took
}

// cacheEntries returns the files under a cache directory with their
// modification times, to tell whether a load wrote (compiled) anything.
func cacheEntries(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	entries := make(map[string]time.Time, len(files))
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		entries[f] = info.ModTime()
	}
	return entries
}

// TestCompilationCache checks that a second start loads compiled code from
// the cache directory instead of compiling. What tells is the directory: a
// cached start adds and rewrites no entry (a compile would store one). The
// time is checked with a wide margin only: on the Go guest (about 2 MB, the
// Go runtime included) a compile takes about 800 ms here and a cached start
// about 85 ms, since it still decodes, validates and makes the module
// interruptible and runs the Go runtime's initialisation; CI measured 9x on
// a quiet machine, so a fixed 10x was a coin toss. Noise can only be
// unlucky, never make a slow cache look fast, so a failed timing is
// repeated twice before the test fails.
func TestCompilationCache(t *testing.T) {
	module := readGuest(t, "gofilter")
	const minSpeedup = 4
	var cold, warm time.Duration
	var dir string
	for attempt := range 3 {
		dir = t.TempDir()
		cold = loadWithCache(t, dir, module)
		stored := cacheEntries(t, dir)
		if len(stored) == 0 {
			t.Fatalf("the cache directory %s is empty after a load", dir)
		}
		warm = time.Duration(1<<63 - 1)
		for range 3 {
			warm = min(warm, loadWithCache(t, dir, module))
		}
		after := cacheEntries(t, dir)
		if len(after) != len(stored) {
			t.Fatalf("cached starts changed the cache's entries from %v to %v: they compiled", stored, after)
		}
		for f, mtime := range stored {
			if !after[f].Equal(mtime) {
				t.Fatalf("a cached start rewrote the entry %s: it compiled", f)
			}
		}
		t.Logf("attempt %d: cold start %s, cached start %s (%.0fx)", attempt, cold, warm, float64(cold)/float64(warm))
		if cold >= minSpeedup*warm {
			break
		}
	}
	if cold < minSpeedup*warm {
		t.Errorf("cached start %s is not %dx faster than the cold start %s", warm, minSpeedup, cold)
	}
	// An entry that cannot be read is compiled again, not trusted, and
	// replaced by a good one.
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	for _, f := range files {
		if err := os.WriteFile(f, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	loadWithCache(t, dir, module)
	if took := loadWithCache(t, dir, module); took > cold/2 {
		t.Errorf("the start after a corrupt entry was repaired took %s, as long as a compile (%s)", took, cold)
	}
}
