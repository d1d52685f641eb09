package sinks

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Spool is a bounded, ordered, on-disk queue of records that survives
// restarts: a directory of numbered segment files, each a sequence of
// length-prefixed records. Records are appended to the newest segment and
// consumed a whole segment at a time, oldest first; a consumed segment is
// deleted only after its records were delivered, so a crash replays (never
// loses) them. It is safe for concurrent use.
type Spool struct {
	dir      string
	maxBytes int64
	dropOld  bool // past maxBytes: delete the oldest segment (else refuse new records)
	segBytes int64
	count    func(rec []byte) int

	mu      sync.Mutex
	segs    []spoolSeg // oldest first
	total   int64
	w       *os.File
	bw      *bufio.Writer
	reading uint64 // the segment Oldest handed out, until Consumed; 0 = none
}

type spoolSeg struct {
	n      uint64
	size   int64
	events int64 // what the records hold (SpoolOptions.Count); -1 = not counted yet
}

// SpoolOptions configure a Spool.
type SpoolOptions struct {
	// MaxBytes bounds the spool's size on disk.
	MaxBytes int64
	// DropOldest, past MaxBytes, deletes the oldest segment to make room;
	// otherwise new records are refused with ErrSpoolFull.
	DropOldest bool
	// Count returns how many events a record holds (a batched message holds
	// several), so that deleted segments are counted in events; nil counts
	// one per record.
	Count func(rec []byte) int
}

// ErrSpoolFull reports records refused because the spool is at its limit.
var ErrSpoolFull = errors.New("spool full")

const spoolSuffix = ".seg"

// OpenSpool opens (or creates) the spool in dir.
func OpenSpool(dir string, opts SpoolOptions) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("open spool %s: size limit %d is not positive", dir, opts.MaxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	s := &Spool{dir: dir, maxBytes: opts.MaxBytes, dropOld: opts.DropOldest, count: opts.Count,
		segBytes: max(min(opts.MaxBytes/8, 64<<20), 64<<10)}
	if s.count == nil {
		s.count = func([]byte) int { return 1 }
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), spoolSuffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil || n == 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("open spool %s: %w", dir, err)
		}
		s.segs = append(s.segs, spoolSeg{n: n, size: info.Size(), events: -1})
		s.total += info.Size()
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].n < s.segs[j].n })
	return s, nil
}

func (s *Spool) path(n uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", n, spoolSuffix))
}

// Len returns the spooled bytes.
func (s *Spool) Len() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Append adds records in order and syncs them to disk. It returns how many
// were stored; the rest were refused (ErrSpoolFull) or lost to an I/O error
// (after an I/O error no record of the call counts as stored, although some
// may have reached the disk and be replayed). Under DropOldest,
// droppedEvents counts the events of the segments deleted to make room.
func (s *Spool) Append(records [][]byte) (stored int, droppedEvents int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var refused error
	for _, r := range records {
		need := int64(len(r) + 4)
		for refused == nil && s.total+need > s.maxBytes {
			if !s.dropOld {
				refused = ErrSpoolFull
				break
			}
			n, ok, err := s.dropOldestLocked()
			if err != nil {
				refused = err
				break
			}
			if !ok {
				refused = ErrSpoolFull // only the segment being written (or replayed) is left
				break
			}
			droppedEvents += n
		}
		if refused != nil {
			break
		}
		if s.w == nil || s.segs[len(s.segs)-1].size >= s.segBytes {
			if err := s.rotateLocked(); err != nil {
				return 0, droppedEvents, s.failedWriteLocked(err)
			}
		}
		var hdr [4]byte
		binary.LittleEndian.PutUint32(hdr[:], uint32(len(r)))
		if _, err := s.bw.Write(hdr[:]); err != nil {
			return 0, droppedEvents, s.failedWriteLocked(err)
		}
		if _, err := s.bw.Write(r); err != nil {
			return 0, droppedEvents, s.failedWriteLocked(err)
		}
		last := &s.segs[len(s.segs)-1]
		last.size += need
		last.events += int64(s.count(r))
		s.total += need
		stored++
	}
	if err := s.flushLocked(); err != nil {
		return 0, droppedEvents, s.failedWriteLocked(err)
	}
	return stored, droppedEvents, refused
}

// failedWriteLocked abandons the segment being written after an I/O error
// (a full disk): what reached it stays readable up to a torn record, its
// size is taken from the disk again, and the next Append starts a fresh
// segment.
func (s *Spool) failedWriteLocked(err error) error {
	if s.w != nil {
		last := &s.segs[len(s.segs)-1]
		if info, serr := s.w.Stat(); serr == nil {
			s.total += info.Size() - last.size
			last.size = info.Size()
		}
		last.events = -1 // count again from what is on disk
		s.w.Close()
		s.w, s.bw = nil, nil
	}
	return fmt.Errorf("write spool: %w", err)
}

func (s *Spool) flushLocked() error {
	if s.bw == nil {
		return nil
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	return s.w.Sync()
}

func (s *Spool) rotateLocked() error {
	if err := s.flushLocked(); err != nil {
		return err
	}
	if s.w != nil {
		s.w.Close()
	}
	var n uint64 = 1
	if len(s.segs) > 0 {
		n = s.segs[len(s.segs)-1].n + 1
	}
	f, err := os.OpenFile(s.path(n), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.w, s.bw = nil, nil
		return fmt.Errorf("create spool segment: %w", err)
	}
	s.w, s.bw = f, bufio.NewWriterSize(f, 64<<10)
	s.segs = append(s.segs, spoolSeg{n: n})
	return nil
}

// dropOldestLocked deletes the oldest segment that is neither being written
// nor being replayed, and returns the events it held.
func (s *Spool) dropOldestLocked() (int64, bool, error) {
	for i, seg := range s.segs {
		if seg.n == s.reading || (s.w != nil && i == len(s.segs)-1) {
			continue
		}
		events := seg.events
		if events < 0 {
			events = s.countSegment(seg.n)
		}
		if err := s.removeLocked(i); err != nil {
			return 0, false, err
		}
		return events, true, nil
	}
	return 0, false, nil
}

// countSegment counts the events of a segment written before this process
// opened the spool.
func (s *Spool) countSegment(n uint64) int64 {
	var events int64
	_ = s.readSegment(n, func(rec []byte) { events += int64(s.count(rec)) })
	return events
}

func (s *Spool) readSegment(n uint64, fn func(rec []byte)) error {
	f, err := os.Open(s.path(n))
	if err != nil {
		return fmt.Errorf("read spool segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil // the end, or a torn tail (a crash mid-write) that ends the segment
		}
		rec := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(r, rec); err != nil {
			return nil
		}
		fn(rec)
	}
}

// Oldest reads every record of the oldest segment, closing it for writes
// first if it is the one being written. ok is false when the spool is
// empty. Pass the segment's id to Consumed once its records are delivered;
// until then the segment is not deleted to make room.
func (s *Spool) Oldest() (id uint64, records [][]byte, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) == 0 {
		return 0, nil, false, nil
	}
	seg := s.segs[0]
	if len(s.segs) == 1 && s.w != nil {
		// New records go to a fresh segment from now on.
		if err := s.flushLocked(); err != nil {
			return 0, nil, false, err
		}
		s.w.Close()
		s.w, s.bw = nil, nil
	}
	if err := s.readSegment(seg.n, func(rec []byte) { records = append(records, rec) }); err != nil {
		return 0, nil, false, err
	}
	s.reading = seg.n
	return seg.n, records, true, nil
}

// Consumed deletes a segment whose records were delivered.
func (s *Spool) Consumed(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reading == id {
		s.reading = 0
	}
	for i, seg := range s.segs {
		if seg.n != id {
			continue
		}
		if s.w != nil && i == len(s.segs)-1 {
			return nil // still being written: Oldest closes it first
		}
		return s.removeLocked(i)
	}
	return nil
}

// removeLocked deletes segment i from the disk and from the accounting.
func (s *Spool) removeLocked(i int) error {
	seg := s.segs[i]
	if err := os.Remove(s.path(seg.n)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete spool segment: %w", err)
	}
	s.segs = append(s.segs[:i], s.segs[i+1:]...)
	s.total -= seg.size
	return nil
}

// Release gives back a segment Oldest handed out that could not be
// delivered; it stays first in line.
func (s *Spool) Release(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reading == id {
		s.reading = 0
	}
}

// Close flushes and closes the segment being written.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.flushLocked()
	if s.w != nil {
		s.w.Close()
		s.w, s.bw = nil, nil
	}
	return err
}
