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

	mu    sync.Mutex
	segs  []spoolSeg // oldest first
	total int64
	w     *os.File
	bw    *bufio.Writer
}

type spoolSeg struct {
	n    uint64
	size int64
}

// ErrSpoolFull reports records refused because the spool is at its limit.
var ErrSpoolFull = errors.New("spool full")

const spoolSuffix = ".seg"

// OpenSpool opens (or creates) the spool in dir. maxBytes bounds its size;
// past it, dropOldest deletes the oldest segment, otherwise new records are
// refused with ErrSpoolFull.
func OpenSpool(dir string, maxBytes int64, dropOldest bool) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes, dropOld: dropOldest, segBytes: max(min(maxBytes/8, 64<<20), 64<<10)}
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
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("open spool %s: %w", dir, err)
		}
		s.segs = append(s.segs, spoolSeg{n: n, size: info.Size()})
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
// were stored; the rest were refused (ErrSpoolFull) or lost to an I/O error.
// Under drop-oldest, the number of records deleted to make room is
// returned as dropped (counted by segment, since records are not indexed).
func (s *Spool) Append(records [][]byte) (stored int, droppedSegs int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range records {
		need := int64(len(r) + 4)
		for s.total+need > s.maxBytes {
			if !s.dropOld || len(s.segs) <= 1 {
				return stored, droppedSegs, s.flushLocked(ErrSpoolFull)
			}
			if err := s.dropOldestLocked(); err != nil {
				return stored, droppedSegs, err
			}
			droppedSegs++
		}
		if s.w == nil || s.segs[len(s.segs)-1].size >= s.segBytes {
			if err := s.rotateLocked(); err != nil {
				return stored, droppedSegs, err
			}
		}
		var hdr [4]byte
		binary.LittleEndian.PutUint32(hdr[:], uint32(len(r)))
		if _, err := s.bw.Write(hdr[:]); err != nil {
			return stored, droppedSegs, err
		}
		if _, err := s.bw.Write(r); err != nil {
			return stored, droppedSegs, err
		}
		s.segs[len(s.segs)-1].size += need
		s.total += need
		stored++
	}
	return stored, droppedSegs, s.flushLocked(nil)
}

func (s *Spool) flushLocked(prev error) error {
	if s.bw == nil {
		return prev
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	if err := s.w.Sync(); err != nil {
		return err
	}
	return prev
}

func (s *Spool) rotateLocked() error {
	if err := s.flushLocked(nil); err != nil {
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
		return fmt.Errorf("create spool segment: %w", err)
	}
	s.w, s.bw = f, bufio.NewWriterSize(f, 64<<10)
	s.segs = append(s.segs, spoolSeg{n: n})
	return nil
}

func (s *Spool) dropOldestLocked() error {
	seg := s.segs[0]
	if err := os.Remove(s.path(seg.n)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.segs = s.segs[1:]
	s.total -= seg.size
	return nil
}

// Oldest reads every record of the oldest segment, closing it for writes
// first if it is the one being written. ok is false when the spool is
// empty. Pass the segment's id to Consumed once its records are delivered.
func (s *Spool) Oldest() (id uint64, records [][]byte, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) == 0 {
		return 0, nil, false, nil
	}
	seg := s.segs[0]
	if len(s.segs) == 1 && s.w != nil {
		// New records go to a fresh segment from now on.
		if err := s.flushLocked(nil); err != nil {
			return 0, nil, false, err
		}
		s.w.Close()
		s.w, s.bw = nil, nil
	}
	f, err := os.Open(s.path(seg.n))
	if err != nil {
		return 0, nil, false, fmt.Errorf("read spool segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			// A torn tail (crash mid-write) ends the segment.
			break
		}
		rec := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(r, rec); err != nil {
			break
		}
		records = append(records, rec)
	}
	return seg.n, records, true, nil
}

// Consumed deletes a segment whose records were delivered.
func (s *Spool) Consumed(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, seg := range s.segs {
		if seg.n != id {
			continue
		}
		if s.w != nil && i == len(s.segs)-1 {
			return nil // still being written: Oldest closes it first
		}
		if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		s.segs = append(s.segs[:i], s.segs[i+1:]...)
		s.total -= seg.size
		return nil
	}
	return nil
}

// Close flushes and closes the segment being written.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.flushLocked(nil)
	if s.w != nil {
		s.w.Close()
		s.w, s.bw = nil, nil
	}
	return err
}
