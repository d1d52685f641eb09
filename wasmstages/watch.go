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
// nil. It is a loop around a fileWatch's check: a version that fails to
// load is logged and counted once; the running version stays until the
// file changes again (an editor saving a half-written file is retried when
// the write completes). It fails at once for a stage built from
// ModuleBytes.
func (s *Stage) WatchFile(ctx context.Context, poll time.Duration) error {
	if s.cfg.Module == "" {
		return fmt.Errorf("watch stage %q: it was not loaded from a file", s.cfg.Name)
	}
	w := &fileWatch{s: s}
	if poll <= 0 {
		poll = DefaultPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := w.check(ctx); err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return nil
			}
			s.log.Warn("module file changed, but the new version was refused; the running version stays", "path", s.cfg.Module, "error", err)
		}
	}
}

// fileWatch notices changes of a stage's module file. One goroutine owns
// it.
type fileWatch struct {
	s *Stage
	// seen is what the file looked like at the last check that read it;
	// nil before the first, which reads the file whatever it looks like
	// (it may have changed between New reading it and the watch starting).
	seen os.FileInfo
}

// check swaps in the module file's content if the file changed since the
// last check and its content is neither the running version nor the last
// one refused. A change is noticed by the file's identity (a new file
// renamed over it), size and modification time, and confirmed by the
// content's digest. A file that is missing or unreadable is not a change:
// it may be being replaced. The error is the refused version's.
func (w *fileWatch) check(ctx context.Context) error {
	s := w.s
	path := s.cfg.Module
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if w.seen != nil && os.SameFile(w.seen, st) && st.Size() == w.seen.Size() && st.ModTime().Equal(w.seen.ModTime()) {
		return nil
	}
	w.seen = st
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	digest := digestOf(b)
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	if digest == s.lastFailed || digest == s.Digest() {
		return nil
	}
	return s.swap(ctx, b, digest, Version{})
}
