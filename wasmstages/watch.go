package wasmstages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// DefaultPoll is how often WatchFile looks at the module file by default.
const DefaultPoll = 2 * time.Second

// Reload reads the module file again and swaps it in if its content
// changed (see Swap). It fails for a stage built from ModuleBytes.
func (s *Stage) Reload(ctx context.Context) error {
	if s.cfg.Module == "" {
		return fmt.Errorf("reload stage %q: it was not loaded from a file", s.cfg.Name)
	}
	b, err := os.ReadFile(s.cfg.Module)
	if err != nil {
		return fmt.Errorf("reload stage %q: %w", s.cfg.Name, err)
	}
	return s.Swap(ctx, b)
}

// WatchFile polls the module file every poll (DefaultPoll when 0) and swaps
// in its content whenever it changes, until ctx is done; it then returns
// nil. A change is noticed by the file's identity (a new file renamed over
// it), size and modification time, and confirmed by the content's digest. A version that fails to load is logged and counted
// once; the running version stays until the file changes again (an editor
// saving a half-written file is retried when the write completes). It fails
// at once for a stage built from ModuleBytes.
func (s *Stage) WatchFile(ctx context.Context, poll time.Duration) error {
	if s.cfg.Module == "" {
		return fmt.Errorf("watch stage %q: it was not loaded from a file", s.cfg.Name)
	}
	if poll <= 0 {
		poll = DefaultPoll
	}
	path := s.cfg.Module
	// The first poll reads the file whatever it looks like: it may have
	// changed between New reading it and this watch starting.
	var seen os.FileInfo
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		st, err := os.Stat(path)
		if err != nil {
			continue // being replaced (rename over it), or gone: keep running what runs
		}
		if seen != nil && os.SameFile(seen, st) && st.Size() == seen.Size() && st.ModTime().Equal(seen.ModTime()) {
			continue
		}
		seen = st
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		digest := digestOf(b)
		s.swapMu.Lock()
		refused := digest == s.lastFailed
		s.swapMu.Unlock()
		if refused {
			continue
		}
		// swap does nothing when digest is the running version's.
		if err := s.swap(ctx, b, digest); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("module file changed, but the new version was refused; the running version stays", "path", path, "error", err)
			continue
		}
	}
}
