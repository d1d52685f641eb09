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

// TestCompilationCache checks that a second start loads compiled code from
// the cache directory instead of compiling: New on the Go guest (about 2 MB,
// the Go runtime included) must be at least 10x faster with a warm cache.
// On a quiet machine it is about 20x (the warm start still decodes and
// validates the module and runs the Go runtime's initialisation). Noise can
// only be unlucky, never make a slow cache look fast, so a failed
// measurement is repeated twice before the test fails.
func TestCompilationCache(t *testing.T) {
	module := readGuest(t, "gofilter")
	var cold, warm time.Duration
	var dir string
	for attempt := range 3 {
		dir = t.TempDir()
		cold = loadWithCache(t, dir, module)
		files, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
		if len(files) == 0 {
			t.Fatalf("the cache directory %s is empty after a load", dir)
		}
		warm = time.Duration(1<<63 - 1)
		for range 3 {
			warm = min(warm, loadWithCache(t, dir, module))
		}
		t.Logf("attempt %d: cold start %s, cached start %s (%.0fx)", attempt, cold, warm, float64(cold)/float64(warm))
		if cold >= 10*warm {
			break
		}
	}
	if cold < 10*warm {
		t.Errorf("cached start %s is not 10x faster than the cold start %s", warm, cold)
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
