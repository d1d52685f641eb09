package sinks

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// janitor compresses and deletes the files the sink no longer writes, one
// sweep per wake-up, until wake is closed (after a last sweep) or ctx ends.
func (s *File) janitor(ctx context.Context) {
	for range s.wake {
		if ctx.Err() != nil {
			return
		}
		s.sweep(ctx)
	}
}

// sweep compresses (when configured) every file of the sink that is not
// being written, then applies retention. Files are the sink's when their
// names fit its pattern (FilePattern.Owns); nothing else in the directory
// is touched.
func (s *File) sweep(ctx context.Context) {
	dir := s.pattern.Dir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.errs["retention"].Inc()
			s.logLimited("list directory", "dir", dir, "error", err)
		}
		return
	}
	var done []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".gz.tmp") && s.pattern.Owns(strings.TrimSuffix(name, ".tmp")) {
			os.Remove(filepath.Join(dir, name)) // a compression cut short
			continue
		}
		if !e.Type().IsRegular() || !s.pattern.Owns(name) || s.isActive(name) {
			continue
		}
		if s.opts.Compress && !strings.HasSuffix(name, ".gz") {
			if ctx.Err() != nil {
				return
			}
			if err := compressFile(ctx, filepath.Join(dir, name)); err != nil {
				if ctx.Err() == nil {
					s.errs["compress"].Inc()
					s.logLimited("compress file", "path", filepath.Join(dir, name), "error", err)
				}
				done = append(done, name) // uncompressed, still subject to retention
				continue
			}
			s.compressed.Inc()
			name += ".gz"
		}
		done = append(done, name)
	}
	s.retain(dir, done)
}

// isActive reports whether name is the file being written, or the one the
// pattern names now (written again after a restart, even when closed).
func (s *File) isActive(name string) bool {
	if name == s.pattern.Name(s.now()) {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f != nil && filepath.Base(s.path) == name
}

// retain deletes, of the sink's finished files, those beyond the newest
// KeepFiles and those last written more than RetainFor ago.
func (s *File) retain(dir string, names []string) {
	if s.opts.KeepFiles == 0 && s.opts.RetainFor == 0 {
		return
	}
	type file struct {
		name  string
		mtime time.Time
	}
	var files []file
	for _, n := range names {
		info, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		files = append(files, file{n, info.ModTime()})
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].mtime.Equal(files[j].mtime) {
			return files[i].mtime.After(files[j].mtime)
		}
		return files[i].name > files[j].name // rotated names sort by time
	})
	cutoff := s.now().Add(-s.opts.RetainFor)
	for i, f := range files {
		tooMany := s.opts.KeepFiles > 0 && i >= s.opts.KeepFiles
		tooOld := s.opts.RetainFor > 0 && f.mtime.Before(cutoff)
		if !tooMany && !tooOld {
			continue
		}
		if err := os.Remove(filepath.Join(dir, f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.errs["retention"].Inc()
			s.logLimited("delete old file", "path", filepath.Join(dir, f.name), "error", err)
			continue
		}
		s.deleted.Inc()
	}
}

// compressFile gzips path into path.gz (through path.gz.tmp, synced, so a
// crash leaves either file whole), keeps its modification time and removes
// it. ctx aborts it between chunks.
//
// Neither file is opened through a symbolic link (one swapped in after the
// directory was listed): a link there could make the janitor read, or
// truncate, a file outside the sink's.
func compressFile(ctx context.Context, path string) (err error) {
	in, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	tmp := path + ".gz.tmp"
	os.Remove(tmp) // a compression cut short (Remove does not follow links)
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, info.Mode().Perm())
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	gz := gzip.NewWriter(out)
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := in.Read(buf)
		if n > 0 {
			if _, err := gz.Write(buf[:n]); err != nil {
				return fmt.Errorf("write %s: %w", tmp, err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	os.Chtimes(tmp, info.ModTime(), info.ModTime())
	if err := os.Rename(tmp, path+".gz"); err != nil {
		return err
	}
	return os.Remove(path)
}
