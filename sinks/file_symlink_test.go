package sinks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/pipeline"
)

// TestFileRefusesSymlinkedActiveFile: a symbolic link planted where the
// sink writes (an attacker redirecting the audit log to a file of theirs,
// or over one of the system's) is refused with a clear error, the batch
// counted as lost, and the link's target left untouched; once the link is
// gone the sink writes the real file.
func TestFileRefusesSymlinkedActiveFile(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "victim")
	if err := os.WriteFile(target, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "events.jsonl")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	s, err := NewFile("audit", FileOptions{Path: path, Fsync: "never"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	err = s.Write(context.Background(), fileBatch(1, 3))
	loss, ok := errors.AsType[*pipeline.WriteLoss](err)
	if !ok || len(loss.Events) != 3 || loss.Reason != ReasonWriteError || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Write through a link: %v; want the 3 events lost (write_error), saying it is a symbolic link", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("the link's target now holds %q", b)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), fileBatch(4, 2)); err != nil {
		t.Fatalf("Write once the link is gone: %v", err)
	}
	if info, err := os.Lstat(path); err != nil || !info.Mode().IsRegular() {
		t.Errorf("%s: %v, %v; want a regular file", path, info, err)
	}
}

// TestFileJanitorSkipsSymlinks: a link named like one of the sink's
// rotated files is neither compressed (which would copy its target into
// the log directory) nor followed; the sink's real rotated files are.
func TestFileJanitorSkipsSymlinks(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "secret")
	if err := os.WriteFile(target, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "events.20260101T000000.000Z-000.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "events.20260101T000001.000Z-000.jsonl"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewFile("audit", FileOptions{Path: filepath.Join(dir, "events.jsonl"), Compress: true, Fsync: "never"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background()) // after a last sweep
	waitFiles(t, dir, []string{"events.20260101T000000.000Z-000.jsonl", "events.20260101T000001.000Z-000.jsonl.gz"})
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the planted link: %v, %v", info, err)
	}
	if b, _ := os.ReadFile(target); string(b) != "secret\n" {
		t.Errorf("the link's target now holds %q", b)
	}
}

// TestCompressFileRefusesLinks: compressFile, handed a path that became a
// link after the directory was listed, refuses it; a link planted at its
// temporary file is replaced, never written through.
func TestCompressFileRefusesLinks(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "victim")
	os.WriteFile(target, []byte("precious\n"), 0o600)
	link := filepath.Join(dir, "a.jsonl")
	os.Symlink(target, link)
	if err := compressFile(context.Background(), link); err == nil {
		t.Error("compressed through a link")
	}
	real := filepath.Join(dir, "b.jsonl")
	os.WriteFile(real, []byte("{}\n"), 0o600)
	os.Symlink(target, real+".gz.tmp")
	if err := compressFile(context.Background(), real); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("the link's target now holds %q", b)
	}
}
