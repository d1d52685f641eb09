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
// nil. It is a loop around a FileWatch's Check: a version that fails to
// load is logged and counted once; the running version stays until the
// file changes again (an editor saving a half-written file is retried when
// the write completes). It fails at once for a stage built from
// ModuleBytes.
func (s *Stage) WatchFile(ctx context.Context, poll time.Duration) error {
	w, err := s.NewFileWatch()
	if err != nil {
		return err
	}
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
		if _, err := w.Check(ctx); err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return nil
			}
			s.log.Warn("module file changed, but the new version was refused; the running version stays", "path", s.cfg.Module, "error", err)
		}
	}
}

// FileWatch notices changes of a stage's module file. Its Check is not
// safe for concurrent use; one goroutine owns a FileWatch.
type FileWatch struct {
	s *Stage
	// seen is what the file looked like at the last Check that read it;
	// nil before the first, which reads the file whatever it looks like
	// (it may have changed between New reading it and the watch starting).
	seen os.FileInfo
}

// NewFileWatch returns a watch of the stage's module file. It fails for a
// stage built from ModuleBytes.
func (s *Stage) NewFileWatch() (*FileWatch, error) {
	if s.cfg.Module == "" {
		return nil, fmt.Errorf("watch stage %q: it was not loaded from a file", s.cfg.Name)
	}
	return &FileWatch{s: s}, nil
}

// Forget makes the next Check read the file whatever it looks like, and
// retry content that was refused before (an operator asked).
func (w *FileWatch) Forget() {
	w.seen = nil
	w.s.swapMu.Lock()
	w.s.lastFailed = ""
	w.s.swapMu.Unlock()
}

// Check swaps in the module file's content if the file changed since the
// last Check and its content is neither the running version nor the last
// one refused. A change is noticed by the file's identity (a new file
// renamed over it), size and modification time, and confirmed by the
// content's digest. A file that is missing or unreadable is not a change:
// it may be being replaced. It reports whether a new version now runs; the
// error is the refused version's.
func (w *FileWatch) Check(ctx context.Context) (swapped bool, err error) {
	s := w.s
	path := s.cfg.Module
	st, err := os.Stat(path)
	if err != nil {
		return false, nil
	}
	if w.seen != nil && os.SameFile(w.seen, st) && st.Size() == w.seen.Size() && st.ModTime().Equal(w.seen.ModTime()) {
		return false, nil
	}
	w.seen = st
	b, err := os.ReadFile(path)
	if err != nil {
		return false, nil
	}
	digest := digestOf(b)
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	if digest == s.lastFailed || digest == s.Digest() {
		return false, nil
	}
	if err := s.swap(ctx, b, digest, Version{}); err != nil {
		return false, err
	}
	return true, nil
}
