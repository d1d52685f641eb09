package wasmstages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tetratelabs/wazero"
)

// Cache holds compiled stage code for every stage that shares it: in memory
// (a module compiled once serves every stage and every version swap that
// uses the same bytes) and, when opened on a directory, on disk, so that the
// next start of the agent loads machine code instead of compiling. Entries
// are keyed by the module's bytes, wazero's version and the platform, so a
// changed module or an upgraded agent compiles afresh.
//
// A Cache is safe for concurrent use, also by several processes sharing the
// directory (entries are written to a temporary file and renamed). Close it
// after every Stage using it is closed.
type Cache struct {
	c   wazero.CompilationCache
	dir string
}

// NewCache opens a cache in dir, creating the directory when missing; an
// empty dir keeps compiled code in memory only.
func NewCache(dir string) (*Cache, error) {
	if dir == "" {
		return &Cache{c: wazero.NewCompilationCache()}, nil
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open wasm compilation cache %s: %w", dir, err)
	}
	return &Cache{c: c, dir: dir}, nil
}

// CompilationCache returns the wazero cache, for the other Wasm hosts of
// the agent (wasm-bpf applications) to share; it is closed with the Cache.
func (c *Cache) CompilationCache() wazero.CompilationCache { return c.c }

// Dir returns the directory the cache persists to, "" for memory only.
func (c *Cache) Dir() string { return c.dir }

// Close releases the compiled code the cache holds in memory; the files
// stay.
func (c *Cache) Close(ctx context.Context) error {
	if err := c.c.Close(ctx); err != nil {
		return fmt.Errorf("close wasm compilation cache: %w", err)
	}
	return nil
}

// purge removes every entry of the cache directory. wazero fails a compile
// on an entry it cannot read (a torn write, a full disk) instead of
// compiling again, and does not say which file it read, so the Stage clears
// the directory and compiles afresh: the other modules are compiled again
// once, which is cheaper than an agent that cannot start.
func (c *Cache) purge() error {
	if c.dir == "" {
		return nil
	}
	entries, err := filepath.Glob(filepath.Join(c.dir, "wazero-*", "*"))
	if err != nil {
		return fmt.Errorf("clear wasm compilation cache: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if err := os.Remove(e); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("clear wasm compilation cache: %w", errors.Join(errs...))
	}
	return nil
}
