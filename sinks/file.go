package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/pipeline"
)

// FileOptions configure a File sink.
type FileOptions struct {
	// Path is the file to write, see FilePattern (time verbs in the name).
	Path string
	// Format is "json" (JSON lines, the default) or "msgpack" (the events'
	// msgpack maps one after the other: a plain msgpack stream, which any
	// streaming msgpack decoder reads).
	Format string

	// Rotation: the active file is closed and renamed (the rotation time
	// inserted before its extension) before a write would take it past
	// MaxSize bytes, or once it is older than MaxAge; 0 turns either off.
	// A time pattern in the name also moves to a new file when the rendered
	// name changes (the old one keeps its name).
	MaxSize int64
	MaxAge  time.Duration
	// Retention of the files no longer written: keep the newest KeepFiles
	// (0: all) and delete those last written more than RetainFor ago (0:
	// never).
	KeepFiles int
	RetainFor time.Duration
	// Compress gzips files once they are no longer written (NAME.gz).
	Compress bool

	// Fsync is "batch" (after every write), "interval" (the default: at
	// most FsyncInterval after a write) or "never" (the kernel decides).
	Fsync         string
	FsyncInterval time.Duration // 0: 1s

	Metrics *pipeline.Registry // nil keeps the counters private
	Logger  *slog.Logger
}

// Drop reasons of the file sink.
const (
	ReasonDiskFull   = "disk_full"   // ENOSPC or EDQUOT
	ReasonWriteError = "write_error" // any other failure to open or write the file
)

// fileHandle is the part of *os.File the sink uses; tests inject faults
// through it.
type fileHandle interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
}

// File writes events to a local file, rotating, compressing and deleting
// old files as configured. A full disk or an unwritable path never stops
// it: the events it could not write are reported as lost (pipeline.WriteLoss,
// reason disk_full or write_error) and counted, and the next write tries
// again. It is safe for concurrent use.
type File struct {
	name    string
	opts    FileOptions
	pattern *FilePattern
	json    bool
	log     *slog.Logger
	open    func(path string) (fileHandle, error)
	now     func() time.Time
	rename  func(from, to string) error

	mu       sync.Mutex
	f        fileHandle
	path     string // of f
	size     int64
	born     time.Time
	dirty    bool // written since the last fsync
	torn     bool // a failed write left a partial record: rotate before writing on
	failures int  // writes failed in a row, for the recovery log
	closed   bool
	// syncing is the file the ticker fsyncs without holding mu (writes go
	// on meanwhile), if any; a file closed meanwhile is closed by the
	// ticker when its fsync returns (closeAfterSync).
	syncing        fileHandle
	closeAfterSync bool
	// retired are files rotated away, for the ticker to fsync (unless the
	// policy is never) and close: writes go on into the next file
	// meanwhile.
	retired chan retiredFile
	// noRotateUntil pauses rotation by size and age after a rename failed,
	// so that a directory that refuses renames costs one attempt a minute,
	// not one per batch; writes go on into the active file meanwhile.
	noRotateUntil time.Time
	// lastRotated and lastRotatedN are the time and tie-breaker of the last
	// rotated name, so that names keep rising when several rotations fall
	// in one millisecond or the wall clock steps back.
	lastRotated  time.Time
	lastRotatedN int
	buf          []byte
	encs         encoders // JSON, with what they learned of the events before
	ends         []int    // per encoded event: its end offset in buf
	idx          []int    // per encoded event: its index in the batch

	wake        chan struct{} // wakes the janitor
	stopTicker  context.CancelFunc
	stopJanitor context.CancelFunc
	tickerDone  chan struct{}
	janitorDone chan struct{}
	logLimit    pipeline.LogLimiter

	bytes, rotations, deleted, compressed *pipeline.Counter
	errs                                  map[string]*pipeline.Counter
	fileSize                              *pipeline.Gauge
}

var _ pipeline.Sink = (*File)(nil)

// retiredFile is a file rotated away, to be closed, after an fsync when
// sync is set.
type retiredFile struct {
	f    fileHandle
	path string
	sync bool
}

// retiredQueue is how many rotated files may wait for the ticker; a
// rotation that finds it full syncs and closes the file itself.
const retiredQueue = 4

// File operations whose failures are counted by the sink.
var fileOps = []string{"open", "write", "fsync", "rotate", "compress", "retention"}

// NewFile checks opts and starts the sink's two goroutines (fsync and
// rotation timer; compression and retention), which Close stops. The file
// is opened at the first write.
func NewFile(name string, opts FileOptions) (*File, error) {
	return newFile(name, opts, time.Now, openFile)
}

// newFile is NewFile with the clock and the file opener replaced (tests).
func newFile(name string, opts FileOptions, now func() time.Time, open func(string) (fileHandle, error)) (*File, error) {
	pattern, err := ParseFilePattern(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("file sink %q: %w", name, err)
	}
	s := &File{name: name, opts: opts, pattern: pattern, log: opts.Logger, now: now, open: open, rename: os.Rename,
		wake: make(chan struct{}, 1), retired: make(chan retiredFile, retiredQueue), errs: map[string]*pipeline.Counter{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch opts.Format {
	case "", "json":
		s.json = true
	case "msgpack":
	default:
		return nil, fmt.Errorf("file sink %q: unknown format %q (want json or msgpack)", name, opts.Format)
	}
	switch opts.Fsync {
	case "":
		s.opts.Fsync = "interval"
	case "batch", "interval", "never":
	default:
		return nil, fmt.Errorf("file sink %q: unknown fsync policy %q (want batch, interval or never)", name, opts.Fsync)
	}
	if s.opts.FsyncInterval <= 0 {
		s.opts.FsyncInterval = time.Second
	}
	if opts.MaxSize < 0 || opts.MaxAge < 0 || opts.KeepFiles < 0 || opts.RetainFor < 0 {
		return nil, fmt.Errorf("file sink %q: negative rotation or retention limit", name)
	}
	reg := opts.Metrics
	if reg == nil {
		reg = pipeline.NewRegistry()
	}
	m := reg.Component("sink", name)
	s.bytes = m.Counter("sluice_sink_file_bytes_total", "Bytes a file sink wrote.")
	s.rotations = m.Counter("sluice_sink_file_rotations_total", "Files a file sink closed to start a new one.")
	s.compressed = m.Counter("sluice_sink_file_compressed_total", "Files a file sink gzipped.")
	s.deleted = m.Counter("sluice_sink_file_deleted_total", "Files a file sink deleted for retention.")
	for _, op := range fileOps {
		s.errs[op] = m.Counter("sluice_sink_file_errors_total", "Failed file operations of a file sink, by operation.", "op", op)
	}
	s.fileSize = m.Gauge("sluice_sink_file_size_bytes", "Size of the file a file sink writes.")
	s.start()
	return s, nil
}

// openFile opens the active file for appending. It never follows a
// symbolic link there (O_NOFOLLOW): a link planted where the audit log
// goes would send it, written with the agent's privileges, anywhere.
func openFile(path string) (fileHandle, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o640)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link; the file sink does not write through links (remove it): %w", path, errSymlink)
	}
	return f, err
}

var errSymlink = errors.New("refused to follow a symbolic link")

// start runs the ticker and the janitor; the janitor sweeps once at once
// (files a previous run left to compress or delete).
func (s *File) start() {
	tctx, stopT := context.WithCancel(context.Background())
	jctx, stopJ := context.WithCancel(context.Background())
	s.stopTicker, s.stopJanitor = stopT, stopJ
	s.tickerDone, s.janitorDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.tickerDone)
		s.tick(tctx)
	}()
	go func() {
		defer close(s.janitorDone)
		s.janitor(jctx)
	}()
	s.signalJanitor()
}

// Name returns the sink's config name.
func (s *File) Name() string { return s.name }

// Write appends the batch to the active file, rotating first when due. The
// events it cannot write (a full disk, an unwritable path, an event it
// cannot encode) come back as pipeline.WriteLoss; a record cut short by a
// failed write is truncated away. Safe for concurrent use.
func (s *File) Write(_ context.Context, batch []pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("file sink %q: write after close", s.name)
	}
	encErr := s.encode(batch)
	now := s.now()
	for start := 0; start < len(s.ends); {
		if err := s.ensureFileLocked(now); err != nil {
			return errors.Join(encErr, s.lost(batch, s.idx[start:], "open", err))
		}
		// The events that fit under MaxSize; a file holds at least one.
		end := start
		for end < len(s.ends) && (s.opts.MaxSize == 0 || s.size+int64(s.ends[end]-s.offset(start)) <= s.opts.MaxSize) {
			end++
		}
		if end == start {
			if s.size > 0 && !now.Before(s.noRotateUntil) {
				s.rotateLocked(now, true)
				continue
			}
			end = start + 1 // an empty file, or rotation paused: write on
		}
		from, to := s.offset(start), s.ends[end-1]
		n, err := s.f.Write(s.buf[from:to])
		s.size += int64(n)
		s.bytes.Add(uint64(n))
		s.dirty = s.dirty || n > 0
		if err != nil {
			// Keep the events written whole; cut off a partial one.
			whole := start
			for whole < end && s.ends[whole] <= from+n {
				whole++
			}
			if cut := from + n - s.offset(whole); cut > 0 {
				if terr := s.f.Truncate(s.size - int64(cut)); terr != nil {
					s.torn = true // rotated away before the next write
				} else {
					s.size -= int64(cut)
				}
			}
			s.closeLocked()
			return errors.Join(encErr, s.lost(batch, s.idx[whole:], "write", err))
		}
		start = end
	}
	s.fileSize.Set(s.size)
	if s.failures > 0 {
		s.log.Info("file sink writing again", "sink", s.name, "path", s.path, "failed_writes", s.failures)
		s.failures = 0
	}
	if s.opts.Fsync == "batch" {
		s.syncLocked()
	}
	return encErr
}

// offset is where encoded event i starts in buf.
func (s *File) offset(i int) int {
	if i == 0 {
		return 0
	}
	return s.ends[i-1]
}

// encode renders the batch into s.buf; events it cannot encode come back
// as a WriteLoss.
func (s *File) encode(batch []pipeline.Event) error {
	s.buf, s.ends, s.idx = s.buf[:0], s.ends[:0], s.idx[:0]
	bad := unencodable{encs: &s.encs}
	for i := range batch {
		ev := &batch[i]
		if s.json {
			var ok bool
			if s.buf, ok = bad.appendJSON(s.buf, ev); !ok {
				continue
			}
			s.buf = append(s.buf, '\n')
		} else {
			s.buf = append(s.buf, ev.Data...)
		}
		s.ends = append(s.ends, len(s.buf))
		s.idx = append(s.idx, i)
	}
	return bad.loss("file", s.name)
}

// lost reports the events at batch indexes idx as lost to err in op.
func (s *File) lost(batch []pipeline.Event, idx []int, op string, err error) error {
	s.errs[op].Inc()
	s.failures++
	evs := make([]pipeline.Event, len(idx))
	for i, j := range idx {
		evs[i] = batch[j]
	}
	reason := ReasonWriteError
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		reason = ReasonDiskFull
	}
	path := s.path
	if path == "" {
		path = s.pattern.Path(s.now())
	}
	return &pipeline.WriteLoss{Reason: reason, Events: evs, Err: fmt.Errorf("file sink %q: %s %s: %w", s.name, op, path, err)}
}

// ensureFileLocked opens the file the pattern names now, closing the
// active one when the name changed or a torn record must be rotated away,
// and rotating it when it is too old.
func (s *File) ensureFileLocked(now time.Time) error {
	want := s.pattern.Path(now)
	if s.f != nil && want != s.path {
		s.rotateLocked(now, false) // a new period: the old file keeps its name
	}
	if s.f != nil && s.ageDue(now) {
		s.rotateLocked(now, true)
	}
	if s.f != nil {
		return nil
	}
	if s.torn {
		// The file ends in a partial record the last failed write could
		// not cut off: start a new one rather than append after it.
		if _, err := os.Stat(want); err == nil {
			s.path = want
			s.renameLocked(now)
		}
		s.torn = false
	}
	f, err := s.open(want)
	if err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.f, s.path, s.size, s.born = f, want, info.Size(), now
	if s.size > 0 {
		s.born = birthTime(want, now)
	}
	return nil
}

// birthTime is a file's creation time where the file system records it,
// else now; it dates an existing file the sink appends to, for MaxAge.
func birthTime(path string, now time.Time) time.Time {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_BTIME, &st); err == nil && st.Mask&unix.STATX_BTIME != 0 {
		return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec))
	}
	return now
}

// rotateLocked retires the active file and, when rename is set (rotation
// by size or age, after which the same name is written again), renames it
// to its rotated name. The janitor then compresses it and applies
// retention.
func (s *File) rotateLocked(now time.Time, rename bool) {
	if s.f == nil {
		return
	}
	s.retireLocked()
	if rename {
		s.renameLocked(now)
	}
	s.rotations.Inc()
	s.signalJanitor()
}

func (s *File) renameLocked(now time.Time) {
	dir, active := filepath.Split(s.path)
	at, n := now.UTC().Truncate(time.Millisecond), 0
	if !at.After(s.lastRotated) {
		at, n = s.lastRotated, s.lastRotatedN+1
	}
	for ; n < MaxRotationsPerMilli; n++ {
		target := filepath.Join(dir, s.pattern.RotatedName(active, at, n))
		if taken(target) || taken(target+".gz") {
			continue
		}
		s.lastRotated, s.lastRotatedN = at, n
		if err := s.rename(s.path, target); err != nil {
			s.errs["rotate"].Inc()
			s.logLimited("rotate file", "from", s.path, "to", target, "error", err)
			s.noRotateUntil = now.Add(time.Minute)
		}
		return
	}
	// A thousand rotations in one millisecond: take the next millisecond's
	// names rather than break their order.
	s.lastRotated, s.lastRotatedN = at.Add(time.Millisecond), -1
	s.renameLocked(now)
}

func taken(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// ageDue reports whether the active file is due for rotation by age.
func (s *File) ageDue(now time.Time) bool {
	return s.opts.MaxAge > 0 && s.size > 0 && now.Sub(s.born) >= s.opts.MaxAge && !now.Before(s.noRotateUntil)
}

// closeLocked syncs (unless the policy is never) and closes the active
// file.
func (s *File) closeLocked() {
	if s.f == nil {
		return
	}
	if s.opts.Fsync != "never" {
		s.syncLocked()
	}
	if s.f == s.syncing {
		s.closeAfterSync = true
	} else {
		s.closeFile(s.f, s.path)
	}
	s.f, s.size, s.dirty = nil, 0, false
	s.fileSize.Set(0)
}

// retireLocked hands the active file to the ticker, which fsyncs it
// (unless the policy is never) and closes it, so that the batch that
// rotated it does not wait for the fsync: with interval fsyncs that
// writes back up to an interval of data, hundreds of milliseconds on a
// disk writing 200 MB/s, during which the pipeline's queue would fill.
// A file the ticker is fsyncing now is fsynced again for what was
// written since. When the ticker is behind, it closes the file itself.
func (s *File) retireLocked() {
	f, path := s.f, s.path
	sync := s.opts.Fsync != "never" && (s.dirty || f == s.syncing)
	select {
	case s.retired <- retiredFile{f: f, path: path, sync: sync}:
		s.f, s.size, s.dirty = nil, 0, false
		s.fileSize.Set(0)
	default:
		s.closeLocked()
	}
}

// retire fsyncs (when asked) and closes a retired file, without s.mu.
func (s *File) retire(r retiredFile) {
	if r.sync {
		if err := r.f.Sync(); err != nil {
			s.mu.Lock()
			s.errs["fsync"].Inc()
			s.logLimited("fsync file", "path", r.path, "error", err)
			s.mu.Unlock()
		}
	}
	s.closeFile(r.f, r.path)
}

// closeFile closes a file no longer written, counting a failure.
func (s *File) closeFile(f fileHandle, path string) {
	if err := f.Close(); err != nil {
		s.errs["write"].Inc()
		s.logLimited("close file", "path", path, "error", err)
	}
}

func (s *File) syncLocked() {
	if s.f == nil || !s.dirty {
		return
	}
	if err := s.f.Sync(); err != nil {
		// The data is in the page cache; whether it reaches the disk is
		// unknown, so this is counted and logged, not counted as a drop.
		s.errs["fsync"].Inc()
		s.logLimited("fsync file", "path", s.path, "error", err)
		return
	}
	s.dirty = false
}

// syncUnlocked fsyncs f, the active file when the ticker took it (in
// s.syncing), without holding mu: an fsync writes back all the file's
// dirty pages and can take long, and writes need not wait for it (what
// they add meanwhile is synced the next time). A rotation meanwhile
// leaves closing f to it.
func (s *File) syncUnlocked(f fileHandle, path string) {
	err := f.Sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncing = nil
	if err != nil {
		s.errs["fsync"].Inc()
		s.logLimited("fsync file", "path", path, "error", err)
		if s.f == f {
			s.dirty = true
		}
	}
	if s.closeAfterSync {
		s.closeAfterSync = false
		s.closeFile(f, path)
	}
}

// tick runs until ctx ends: interval fsyncs, and rotations that fall due
// while no events arrive (age, a new period of the time pattern), and
// periodic retention sweeps.
func (s *File) tick(ctx context.Context) {
	period := min(s.opts.FsyncInterval, time.Second)
	if s.opts.MaxAge > 0 {
		period = min(period, max(s.opts.MaxAge/4, 10*time.Millisecond))
	}
	t := time.NewTicker(period)
	defer t.Stop()
	lastSweep := time.Now()
	var lastSync time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-s.retired:
			s.retire(r)
			continue
		case <-t.C:
		}
		now := s.now()
		s.mu.Lock()
		if s.f != nil && ((s.pattern.Timed() && s.pattern.Path(now) != s.path) || s.ageDue(now)) {
			s.rotateLocked(now, s.pattern.Path(now) == s.path)
		}
		var f fileHandle
		path := s.path
		if s.opts.Fsync == "interval" && now.Sub(lastSync) >= s.opts.FsyncInterval {
			lastSync = now
			if s.f != nil && s.dirty {
				f, s.dirty, s.syncing = s.f, false, s.f
			}
		}
		s.mu.Unlock()
		if f != nil {
			s.syncUnlocked(f, path)
		}
		if s.opts.RetainFor > 0 && time.Since(lastSweep) >= min(s.opts.RetainFor/10, time.Minute) {
			lastSweep = time.Now()
			s.signalJanitor()
		}
	}
}

func (s *File) signalJanitor() {
	select {
	case s.wake <- struct{}{}:
	default: // a sweep is already due
	}
}

// Close stops the ticker, syncs (unless the policy is never) and closes the
// file, and lets the janitor finish compressing within ctx; a compression
// cut short leaves the file uncompressed, for the next start.
func (s *File) Close(ctx context.Context) error {
	s.stopTicker()
	<-s.tickerDone
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closeLocked()
	s.closed = true
	s.mu.Unlock()
	// Files rotated away that the ticker did not get to; no rotation
	// adds any now.
	for len(s.retired) > 0 {
		s.retire(<-s.retired)
	}
	s.signalJanitor() // a last sweep, then the janitor returns
	close(s.wake)
	select {
	case <-s.janitorDone:
	case <-ctx.Done():
		s.stopJanitor()
		<-s.janitorDone
	}
	s.stopJanitor()
	return nil
}

// logLimited logs a background failure at most once per 10 seconds,
// saying how many it suppressed in between.
func (s *File) logLimited(msg string, args ...any) {
	if ok, suppressed := s.logLimit.Allow(time.Now()); ok {
		s.log.Warn("file sink: "+msg+" failed", append([]any{"sink", s.name, "suppressed", suppressed}, args...)...)
	}
}
