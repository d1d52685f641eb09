package sinks

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
)

func TestFilePattern(t *testing.T) {
	at := time.Date(2026, 3, 7, 9, 5, 2, 0, time.UTC)
	for _, tc := range []struct {
		path, name, rotated string
	}{
		{"/var/log/sluice/events.jsonl", "events.jsonl", "events.20260307T090502.000Z-000.jsonl"},
		{"/l/events-%Y-%m-%d.jsonl", "events-2026-03-07.jsonl", "events-2026-03-07.20260307T090502.000Z-000.jsonl"},
		{"/l/%Y%m%dT%H%M%S-%j.msgpack", "20260307T090502-066.msgpack", "20260307T090502-066.20260307T090502.000Z-000.msgpack"},
		{"/l/events", "events", "events.20260307T090502.000Z-000"},
		{"/l/100%%.log", "100%.log", "100%.20260307T090502.000Z-000.log"},
	} {
		p, err := ParseFilePattern(tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if got := p.Name(at); got != tc.name {
			t.Errorf("%s: name %q, want %q", tc.path, got, tc.name)
		}
		if got := p.RotatedName(tc.name, at, 0); got != tc.rotated {
			t.Errorf("%s: rotated %q, want %q", tc.path, got, tc.rotated)
		}
		for _, owned := range []string{tc.name, tc.rotated, tc.rotated + ".gz", p.RotatedName(tc.name, at, 3)} {
			if !p.Owns(owned) {
				t.Errorf("%s: does not own %q", tc.path, owned)
			}
		}
		for _, other := range []string{"x" + tc.name, tc.name + ".bak", "notes.txt"} {
			if p.Owns(other) {
				t.Errorf("%s: owns %q", tc.path, other)
			}
		}
	}
	for _, bad := range []string{"", "/l/%Y/events.jsonl", "/l/events-%Q.jsonl", "/l/events%", "/l/"} {
		if _, err := ParseFilePattern(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// readEvents decodes every event in the sink's files in dir (gzipped or
// not), in file name order, and returns the seq values.
func readEvents(t *testing.T, dir, format string) (seqs []uint64, files int) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		var r io.Reader
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		r = f
		if strings.HasSuffix(n, ".gz") {
			if r, err = gzip.NewReader(f); err != nil {
				t.Fatalf("%s: %v", n, err)
			}
		}
		files++
		if format == "msgpack" {
			dec := msgpack.NewDecoder(bufio.NewReader(r))
			for {
				var ev map[string]any
				if err := dec.Decode(&ev); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("%s: not a msgpack stream: %v", n, err)
				}
				seqs = append(seqs, uint64(testutil.Int(ev["seq"])))
			}
		} else {
			seqs = append(seqs, jsonLineSeqs(t, n, r)...)
		}
		f.Close()
	}
	return seqs, files
}

func fileBatch(first, n uint64) []pipeline.Event {
	out := make([]pipeline.Event, 0, n)
	for s := first; s < first+n; s++ {
		out = append(out, seqEvent("exec", s, "comm"))
	}
	return out
}

func TestFileFormats(t *testing.T) {
	for _, format := range []string{"json", "msgpack"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			s, err := NewFile("f", FileOptions{Path: filepath.Join(dir, "events.log"), Format: format, Fsync: "batch"})
			if err != nil {
				t.Fatal(err)
			}
			for first := uint64(1); first <= 300; first += 100 {
				if err := s.Write(context.Background(), fileBatch(first, 100)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			// A restart appends to the same file.
			s, _ = NewFile("f", FileOptions{Path: filepath.Join(dir, "events.log"), Format: format})
			s.Write(context.Background(), fileBatch(301, 10))
			s.Close(context.Background())
			seqs, files := readEvents(t, dir, format)
			if files != 1 || len(seqs) != 310 || seqs[0] != 1 || seqs[309] != 310 {
				t.Errorf("%d files, %d events (%v...): want one file with seq 1..310", files, len(seqs), seqs[:min(len(seqs), 3)])
			}
			if format == "msgpack" {
				raw, _ := os.ReadFile(filepath.Join(dir, "events.log"))
				if want := fileBatch(1, 1)[0].Data; !bytes.HasPrefix(raw, want) {
					t.Error("msgpack file does not start with the first event's bytes passed through")
				}
			}
		})
	}
}

// TestFileRotationUnderLoad: four writers share a sink rotating at 64 KiB
// and gzipping rotated files. Every event ends up in exactly one file, no
// file (uncompressed) exceeds the limit, and no line is torn. With
// retention, only the newest files are kept, and the counters say how many
// were deleted.
func TestFileRotationUnderLoad(t *testing.T) {
	const writers, perWriter, batch = 4, 5000, 50
	run := func(t *testing.T, keep int) (dir string, s *File, reg *pipeline.Registry) {
		dir = t.TempDir()
		reg = pipeline.NewRegistry()
		s, err := NewFile("f", FileOptions{Path: filepath.Join(dir, "events.jsonl"), MaxSize: 64 << 10, Compress: true, KeepFiles: keep, Metrics: reg, Fsync: "interval", FsyncInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perWriter; i += batch {
					first := uint64(w*perWriter + i + 1)
					if err := s.Write(context.Background(), fileBatch(first, batch)); err != nil {
						t.Errorf("write: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		return dir, s, reg
	}
	t.Run("all kept", func(t *testing.T) {
		dir, s, _ := run(t, 0)
		seqs, files := readEvents(t, dir, "json")
		sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
		want := make([]uint64, writers*perWriter)
		for i := range want {
			want[i] = uint64(i + 1)
		}
		if diff := cmp.Diff(want, seqs); diff != "" {
			t.Errorf("events across the files (-want +got):\n%s", diff[:min(len(diff), 2000)])
		}
		rotations := int(s.rotations.Value())
		if rotations < 10 || files != rotations+1 || int(s.compressed.Value()) != rotations {
			t.Errorf("%d files, %d rotations, %d compressed: want every rotated file compressed beside the active one", files, rotations, s.compressed.Value())
		}
		checkFileSizes(t, dir, 64<<10)
	})
	t.Run("keep 3", func(t *testing.T) {
		dir, s, _ := run(t, 3)
		entries, _ := os.ReadDir(dir)
		var gz int
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".gz") {
				gz++
			} else if e.Name() != "events.jsonl" {
				t.Errorf("unexpected file %s", e.Name())
			}
		}
		if gz != 3 || int(s.deleted.Value()) != int(s.rotations.Value())-3 {
			t.Errorf("%d compressed files kept, %d deleted of %d rotated; want 3 kept", gz, s.deleted.Value(), s.rotations.Value())
		}
		seqs, _ := readEvents(t, dir, "json")
		if len(seqs) == 0 || len(seqs) >= writers*perWriter {
			t.Errorf("%d events kept; want some, not all", len(seqs))
		}
	})
}

func checkFileSizes(t *testing.T, dir string, limit int) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if strings.HasSuffix(e.Name(), ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(zr)
		}
		if len(b) > limit {
			t.Errorf("%s holds %d bytes, over the %d limit", e.Name(), len(b), limit)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s ends in a torn line", e.Name())
		}
	}
}

// fakeClock is a settable time for the sink's now.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}

// newFileWithClock builds a sink whose time comes from clock.
func newFileWithClock(t *testing.T, clock *fakeClock, opts FileOptions) *File {
	t.Helper()
	s, err := newFile("f", opts, clock.now, openFile)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFileTimePatternAndAge: a daily pattern moves to a new file at
// midnight (the old one keeps its name and is compressed), and max_age
// rotates a file even when no events arrive.
func TestFileTimePatternAndAge(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(time.Date(2026, 3, 7, 23, 59, 0, 0, time.UTC))
	s := newFileWithClock(t, clock, FileOptions{Path: filepath.Join(dir, "ev-%Y-%m-%d.jsonl"), Compress: true, MaxAge: time.Hour, FsyncInterval: 10 * time.Millisecond})
	s.Write(context.Background(), fileBatch(1, 10))
	clock.add(2 * time.Minute) // 2026-03-08 00:01
	s.Write(context.Background(), fileBatch(11, 10))
	waitFiles(t, dir, []string{"ev-2026-03-07.jsonl.gz", "ev-2026-03-08.jsonl"})
	clock.add(2 * time.Hour) // idle past max_age: the ticker rotates
	waitFiles(t, dir, []string{"ev-2026-03-07.jsonl.gz", "ev-2026-03-08.20260308T020100.000Z-000.jsonl.gz"})
	s.Write(context.Background(), fileBatch(21, 10))
	s.Close(context.Background())
	waitFiles(t, dir, []string{"ev-2026-03-07.jsonl.gz", "ev-2026-03-08.20260308T020100.000Z-000.jsonl.gz", "ev-2026-03-08.jsonl"})
	seqs, _ := readEvents(t, dir, "json")
	if len(seqs) != 30 {
		t.Errorf("%d events in the files, want 30", len(seqs))
	}
}

func waitFiles(t *testing.T, dir string, want []string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		entries, _ := os.ReadDir(dir)
		got = got[:0]
		for _, e := range entries {
			got = append(got, e.Name())
		}
		if cmp.Equal(want, got) {
			return
		}
	}
	t.Fatalf("files (-want +got):\n%s", cmp.Diff(want, got))
}

// TestFileRotatedNamesSortInWriteOrder: with the clock frozen (every
// rotation in one millisecond, more than ten of them) and then stepped back,
// the files read in name order give the events in the order written, and
// compression of a rotated file does not free its name for the next one.
func TestFileRotatedNamesSortInWriteOrder(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(time.Date(2026, 12, 3, 9, 45, 12, 123_000_000, time.UTC))
	s := newFileWithClock(t, clock, FileOptions{Path: filepath.Join(dir, "events.jsonl"), MaxSize: 512, Compress: true})
	seq := uint64(1)
	for i := 0; i < 40; i++ {
		if i == 25 {
			clock.add(-time.Hour) // an NTP step back must not reorder names
		}
		s.Write(context.Background(), fileBatch(seq, 5))
		seq += 5
	}
	s.Close(context.Background())
	seqs, files := readEvents(t, dir, "json")
	if files < 12 {
		t.Fatalf("%d files, want at least 12 rotations in one millisecond", files)
	}
	if len(seqs) != int(seq-1) {
		t.Fatalf("%d events in the files, want %d", len(seqs), seq-1)
	}
	for i, v := range seqs {
		if v != uint64(i+1) {
			t.Fatalf("file name order gives seq %d at position %d, want %d (files out of write order)", v, i, i+1)
		}
	}
}

// TestFileRetentionByAge deletes the sink's finished files last written
// more than retain_for ago, and nothing else in the directory.
func TestFileRetentionByAge(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	old := now.Add(-48 * time.Hour)
	for name, mtime := range map[string]time.Time{
		"events.20260101T000000.000Z.jsonl.gz": old,
		"events.20260102T000000.000Z.jsonl":    old,
		"events.20260103T000000.000Z.jsonl.gz": now.Add(-time.Hour),
		// Older versions rotated to -N within a millisecond; this one
		// writes -NNN. Retention owns all three forms.
		"events.20260102T000000.000Z-1.jsonl":   old,
		"events.20260102T000000.000Z-001.jsonl": old,
		"events.20260103T000000.000Z-002.jsonl": now.Add(-time.Hour),
		"notes.txt":                             old, // not the sink's
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("x\n"), 0o600)
		os.Chtimes(p, mtime, mtime)
	}
	os.WriteFile(filepath.Join(dir, "events.20260104T000000.000Z.jsonl.gz.tmp"), nil, 0o600) // a compression cut short
	s, err := NewFile("f", FileOptions{Path: filepath.Join(dir, "events.jsonl"), RetainFor: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s.Write(context.Background(), fileBatch(1, 1))
	s.Close(context.Background())
	waitFiles(t, dir, []string{"events.20260103T000000.000Z-002.jsonl", "events.20260103T000000.000Z.jsonl.gz", "events.jsonl", "notes.txt"})
	if s.deleted.Value() != 4 {
		t.Errorf("deleted counter = %d, want 4", s.deleted.Value())
	}
}

// faultyFile wraps a real file and fails like a full disk after budget
// bytes: the write that crosses the budget writes what fits and returns
// err; truncation fails when failTruncate is set.
type faultyFile struct {
	*os.File
	budget       *atomic.Int64
	err          error
	failTruncate bool
}

func (f *faultyFile) Write(p []byte) (int, error) {
	left := f.budget.Load()
	if int64(len(p)) <= left {
		f.budget.Add(-int64(len(p)))
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:max(left, 0)])
	f.budget.Add(-int64(n))
	return n, f.err
}

func (f *faultyFile) Truncate(size int64) error {
	if f.failTruncate {
		return errors.New("injected truncate failure")
	}
	return f.File.Truncate(size)
}

// TestFileInjectedWriteErrors: a write that fails part way (ENOSPC) keeps
// the events written whole, truncates the partial one and reports the rest
// as lost (disk_full); a failing open (EACCES) loses the batch as
// write_error; a torn record that cannot be truncated is rotated away; and
// once the fault clears, writing resumes in a clean file.
func TestFileInjectedWriteErrors(t *testing.T) {
	dir := t.TempDir()
	// The sink opens files from Write, on this goroutine: no locking.
	var budget atomic.Int64
	var openErr error
	var failTruncate bool
	open := func(path string) (fileHandle, error) {
		if openErr != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: openErr}
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, err
		}
		return &faultyFile{File: f, budget: &budget, err: syscall.ENOSPC, failTruncate: failTruncate}, nil
	}
	s, err := newFile("f", FileOptions{Path: filepath.Join(dir, "events.jsonl")}, time.Now, open)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	line := len(jsonLine(t, fileBatch(1, 1)[0]))
	lossOf := func(err error) *pipeline.WriteLoss {
		t.Helper()
		var wl *pipeline.WriteLoss
		if !errors.As(err, &wl) {
			t.Fatalf("error %v is not a WriteLoss", err)
		}
		return wl
	}

	budget.Store(int64(3*line + line/2)) // room for 3.5 events
	wl := lossOf(s.Write(context.Background(), fileBatch(1, 10)))
	if wl.Reason != ReasonDiskFull || len(wl.Events) != 7 || wl.Events[0].Seq != 4 {
		t.Errorf("loss %s of %d events from seq %d; want disk_full of 7 from seq 4", wl.Reason, len(wl.Events), wl.Events[0].Seq)
	}
	openErr = syscall.EACCES
	wl = lossOf(s.Write(context.Background(), fileBatch(11, 5)))
	if wl.Reason != ReasonWriteError || len(wl.Events) != 5 || !strings.Contains(wl.Error(), "permission denied") {
		t.Errorf("open failure: %v", wl)
	}
	openErr = nil
	failTruncate = true
	budget.Store(int64(line / 2))
	wl = lossOf(s.Write(context.Background(), fileBatch(16, 2))) // half a line, not truncated
	if len(wl.Events) != 2 {
		t.Errorf("lost %d events, want 2", len(wl.Events))
	}
	failTruncate = false
	budget.Store(1 << 30)
	if err := s.Write(context.Background(), fileBatch(18, 3)); err != nil {
		t.Fatalf("write after the fault cleared: %v", err)
	}
	s.Close(context.Background())
	// The torn file was rotated away; the active one is clean.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("files %v; want the torn file rotated beside a new one", entries)
	}
	active, _ := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if got := strings.Count(string(active), "\n"); got != 3 || !json.Valid(bytes.Split(active, []byte("\n"))[0]) {
		t.Errorf("active file %q: want the 3 events written after the fault", active)
	}
	if s.errs["write"].Value() != 2 || s.errs["open"].Value() != 1 {
		t.Errorf("errors: write %d, open %d; want 2 and 1", s.errs["write"].Value(), s.errs["open"].Value())
	}
}

func jsonLine(t *testing.T, ev pipeline.Event) []byte {
	t.Helper()
	var s File
	s.json = true
	if err := s.encode([]pipeline.Event{ev}); err != nil {
		t.Fatal(err)
	}
	return s.buf
}

// TestFileDiskFull writes through a pipeline into a 64 KiB tmpfs the test
// mounts: the sink never fails the agent, every event that did not fit is
// counted as dropped (disk_full) and nothing else is lost; the file holds
// only whole lines; and once space is freed, writing resumes.
func TestFileDiskFull(t *testing.T) {
	testutil.RequireRoot(t, "mount a tmpfs")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "sluice-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	reg := pipeline.NewRegistry()
	sink, err := NewFile("disk", FileOptions{Path: filepath.Join(dir, "events.jsonl"), Metrics: reg, Fsync: "batch"})
	if err != nil {
		t.Fatal(err)
	}
	const total = 2000 // ~300 KiB of JSON: far more than fits
	src := &finiteSource{name: "exec", n: total}
	p, err := pipeline.New(pipeline.Spec{Name: "p", Sources: []pipeline.Source{src}, Sinks: []pipeline.Sink{sink}, Metrics: reg,
		BatchSize: 50, LossInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), 10*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	m := reg.Component("sink", "disk")
	full := m.Dropped(ReasonDiskFull).Value()
	if m.Received.Value() != m.Sent.Value()+m.DroppedTotal() {
		t.Errorf("received %d != sent %d + dropped %d", m.Received.Value(), m.Sent.Value(), m.DroppedTotal())
	}
	if full == 0 || full >= total || m.DroppedTotal() != full {
		t.Errorf("dropped %d (disk_full %d) of %d; want only disk_full, some but not all", m.DroppedTotal(), full, total)
	}
	// Every item the sink counted as sent (events, and the final loss
	// record if it fitted) is one whole line in the file.
	lines, _ := readEvents(t, dir, "json")
	if uint64(len(lines)) != m.Sent.Value() {
		t.Errorf("file holds %d lines, sink counted %d sent", len(lines), m.Sent.Value())
	}
	checkFileSizes(t, dir, 64<<10)
	if sink.errs["write"].Value() == 0 {
		t.Error("write errors not counted")
	}

	// Still full: a write loses its events; freeing space lets the same
	// sink write again.
	again, err := NewFile("again", FileOptions{Path: filepath.Join(dir, "events.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(context.Background())
	var wl *pipeline.WriteLoss
	if err := again.Write(context.Background(), fileBatch(1, 500)); !errors.As(err, &wl) || wl.Reason != ReasonDiskFull {
		t.Fatalf("write to a full disk: %v, want a disk_full WriteLoss", err)
	}
	if err := os.Remove(filepath.Join(dir, "events.jsonl")); err != nil {
		t.Fatal(err)
	}
	if err := again.Write(context.Background(), fileBatch(1, 10)); err != nil {
		t.Errorf("write after space was freed: %v", err)
	}
}

// finiteSource emits n numbered events in batches of 100, then returns.
type finiteSource struct {
	name string
	n    int
}

func (s *finiteSource) Name() string { return s.name }

func (s *finiteSource) Run(ctx context.Context, out pipeline.Emitter) error {
	for seq := 1; seq <= s.n; seq += 100 {
		batch := fileBatch(uint64(seq), uint64(min(100, s.n-seq+1)))
		for i := range batch {
			batch[i].Source = s.name
		}
		if err := out.Emit(ctx, batch); err != nil {
			return fmt.Errorf("emit: %w", err)
		}
	}
	return nil
}

// TestFileRenameFailure: when the directory refuses to rename the file
// due for rotation, writing goes on into the active file (no loop, no
// loss), the failure is counted, and rotation is tried again a minute
// later.
func TestFileRenameFailure(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC))
	s := newFileWithClock(t, clock, FileOptions{Path: filepath.Join(dir, "events.jsonl"), MaxSize: 4 << 10})
	refuse := true
	s.rename = func(from, to string) error {
		if refuse {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: syscall.EROFS}
		}
		return os.Rename(from, to)
	}
	done := make(chan error, 1)
	go func() {
		for first := uint64(1); first <= 500; first += 50 {
			if err := s.Write(context.Background(), fileBatch(first, 50)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writes hung while rotation failed")
	}
	if s.errs["rotate"].Value() != 1 {
		t.Errorf("rotate errors = %d, want 1 (then paused for a minute)", s.errs["rotate"].Value())
	}
	refuse = false
	clock.add(time.Minute)
	if err := s.Write(context.Background(), fileBatch(501, 1)); err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())
	seqs, files := readEvents(t, dir, "json")
	if len(seqs) != 501 || files != 2 {
		t.Errorf("%d events in %d files; want all 501, the big file rotated once the rename worked", len(seqs), files)
	}
}

// TestFileEncodeError: an event that is not valid msgpack cannot become a
// JSON line; it alone is dropped (reason encode_error) and the events
// around it are written.
func TestFileEncodeError(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFile("f", FileOptions{Path: filepath.Join(dir, "events.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	batch := fileBatch(1, 6)
	batch[2].Data = []byte{0xc1} // a byte msgpack never uses
	var wl *pipeline.WriteLoss
	if err := s.Write(context.Background(), batch); !errors.As(err, &wl) {
		t.Fatalf("Write = %v, want a WriteLoss", err)
	}
	if wl.Reason != ReasonEncodeError || len(wl.Events) != 1 || wl.Events[0].Seq != 3 || !strings.Contains(wl.Error(), `file sink "f"`) {
		t.Errorf("lost %d events (%s): %v; want seq 3 alone as encode_error", len(wl.Events), wl.Reason, wl)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if seqs, _ := readEvents(t, dir, "json"); !slices.Equal(seqs, []uint64{1, 2, 4, 5, 6}) {
		t.Errorf("file holds seqs %v, want 1 2 4 5 6", seqs)
	}
}

// slowSyncFile is a real file whose first Sync blocks until release is
// closed; it reports a Close that comes while that Sync runs.
type slowSyncFile struct {
	*os.File
	entered, release chan struct{}
	first            *sync.Once
	inSync           atomic.Bool
	closedInSync     *atomic.Bool
	closed           chan struct{}
}

func (f *slowSyncFile) Sync() error {
	blocked := false
	f.first.Do(func() { blocked = true })
	if blocked {
		f.inSync.Store(true)
		close(f.entered)
		<-f.release
		f.inSync.Store(false)
	}
	return f.File.Sync()
}

func (f *slowSyncFile) Close() error {
	if f.inSync.Load() {
		f.closedInSync.Store(true)
	}
	defer close(f.closed)
	return f.File.Close()
}

// TestFileWritesDuringSlowFsync: the interval fsync, which writes back all
// of the file's dirty pages, runs without holding the sink's lock, so
// batches keep being written while it runs; a rotation meanwhile leaves
// the file open until the fsync returns, and closes it then.
func TestFileWritesDuringSlowFsync(t *testing.T) {
	dir := t.TempDir()
	var once sync.Once
	var closedInSync atomic.Bool
	var files []*slowSyncFile // opened from Write, on this goroutine
	open := func(path string) (fileHandle, error) {
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		sf := &slowSyncFile{File: f.(*os.File), entered: make(chan struct{}), release: make(chan struct{}),
			first: &once, closedInSync: &closedInSync, closed: make(chan struct{})}
		files = append(files, sf)
		return sf, nil
	}
	line := int64(len(jsonLine(t, fileBatch(1, 1)[0])))
	s, err := newFile("f", FileOptions{Path: filepath.Join(dir, "events.jsonl"), FsyncInterval: 10 * time.Millisecond, MaxSize: 20 * line}, time.Now, open)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Write(context.Background(), fileBatch(1, 10)); err != nil {
		t.Fatal(err)
	}
	first := files[0]
	<-first.entered // the ticker fsyncs the first file, and stays there
	wrote := make(chan error, 1)
	go func() {
		// 10 more fill the file, the next 10 rotate it.
		err := s.Write(context.Background(), fileBatch(11, 10))
		if err == nil {
			err = s.Write(context.Background(), fileBatch(21, 10))
		}
		wrote <- err
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		close(first.release)
		t.Fatal("writes waited for the interval fsync")
	}
	if len(files) != 2 {
		t.Fatalf("%d files opened, want the rotation to open a second", len(files))
	}
	select {
	case <-first.closed:
		t.Fatal("the rotated file was closed while its fsync ran")
	default:
	}
	close(first.release)
	<-first.closed // closed once its fsync returned
	if closedInSync.Load() {
		t.Error("a file was closed during its fsync")
	}
	s.Close(context.Background())
	if seqs, files := readEvents(t, dir, "json"); len(seqs) != 30 || files != 2 {
		t.Errorf("%d events in %d files, want 30 in 2", len(seqs), files)
	}
}

// TestFileRotationDoesNotWaitForFsync: the fsync of a file rotated away
// runs in the sink's ticker, so the batch that rotated it is written into
// the next file meanwhile; the rotated file is fsynced before it is
// closed, and Close waits for both.
func TestFileRotationDoesNotWaitForFsync(t *testing.T) {
	dir := t.TempDir()
	var once sync.Once
	var closedInSync atomic.Bool
	var mu sync.Mutex
	var files []*slowSyncFile // opened from Write, on another goroutine too
	opened := func() []*slowSyncFile {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(files)
	}
	open := func(path string) (fileHandle, error) {
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		sf := &slowSyncFile{File: f.(*os.File), entered: make(chan struct{}), release: make(chan struct{}),
			first: &once, closedInSync: &closedInSync, closed: make(chan struct{})}
		mu.Lock()
		files = append(files, sf)
		mu.Unlock()
		return sf, nil
	}
	line := int64(len(jsonLine(t, fileBatch(1, 1)[0])))
	// No interval fsync during the test: the first fsync is the rotation's.
	s, err := newFile("f", FileOptions{Path: filepath.Join(dir, "events.jsonl"), FsyncInterval: time.Hour, MaxSize: 30 * line}, time.Now, open)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Write(context.Background(), fileBatch(1, 10)); err != nil {
		t.Fatal(err)
	}
	if n := len(opened()); n != 1 {
		t.Fatalf("%d files opened by the first batch, want 1", n)
	}
	wrote := make(chan error, 1)
	go func() { wrote <- s.Write(context.Background(), fileBatch(11, 25)) }() // rotates
	first := opened()[0]
	select {
	case <-first.entered: // the rotated file's fsync, which stays there
	case <-time.After(30 * time.Second):
		t.Fatal("the rotated file was not fsynced")
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		close(first.release)
		t.Fatal("the write that rotated the file waited for its fsync")
	}
	if n := len(opened()); n != 2 {
		t.Fatalf("%d files opened, want the rotation to open a second", n)
	}
	closed := make(chan struct{})
	go func() {
		s.Close(context.Background())
		close(closed)
	}()
	select {
	case <-first.closed:
		t.Fatal("the rotated file was closed while its fsync ran")
	case <-closed:
		t.Fatal("Close returned while a rotated file's fsync ran")
	case <-time.After(50 * time.Millisecond): // a moment for a wrong close to happen
	}
	close(first.release)
	<-first.closed
	<-closed
	if closedInSync.Load() {
		t.Error("a file was closed during its fsync")
	}
	if seqs, files := readEvents(t, dir, "json"); len(seqs) != 35 || files != 2 {
		t.Errorf("%d events in %d files, want 35 in 2", len(seqs), files)
	}
}
