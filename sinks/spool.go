package sinks

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Spool is a bounded, ordered, on-disk queue of records that survives
// restarts: a directory of numbered segment files, each a header and a
// sequence of framed records (segment format below). Records are appended to
// the newest segment and consumed a whole segment at a time, oldest first; a
// consumed segment is deleted only after its records were delivered, so a
// crash replays (never loses) them. One process at a time may open a spool
// directory (an exclusive flock on its lock file). It is safe for concurrent
// use.
type Spool struct {
	dir      string
	maxBytes int64
	dropOld  bool // past maxBytes: delete the oldest segment (else refuse new records)
	segBytes int64
	count    func(rec []byte) int
	lock     *os.File

	mu      sync.Mutex
	segs    []spoolSeg // oldest first
	total   int64
	w       *os.File
	bw      *bufio.Writer
	marker  [4]byte // the record marker of the segment being written
	frame   []byte  // scratch for one record's frame header
	reading uint64  // the segment Oldest handed out, until Consumed; 0 = none
	closed  bool
}

type spoolSeg struct {
	n      uint64
	legacy bool // written by a sluice before segment format 2 (".seg")
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

// ErrSpoolLocked reports a spool directory another process has open.
var ErrSpoolLocked = errors.New("spool directory is in use by another process")

// Segment format 2 ("<n>.v2.seg") starts with a 20-byte header: the magic
// "SLUICESPOOL\x00", the format version (u16 LE, 2), two zero bytes and a
// 4-byte record marker drawn at random for the segment. Each record is
// framed as
//
//	marker [4]byte   the segment's record marker
//	length u32 LE    of the payload
//	crc    u32 LE    CRC-32C of the marker, the length and the payload
//	payload
//
// A reader that meets a frame it cannot trust (a wrong marker, an
// impossible length, a checksum that does not match) resynchronises on the
// next marker whose frame checks out, and counts what it skipped. The marker
// is random per segment so that no event content can forge a frame a
// reader would accept there (the spool's files are the agent's alone).
//
// Segment format 1 ("<n>.seg", sluice before this format) is a sequence of
// u32-length-prefixed records with no checksum; such segments left by an
// older agent are still read and replayed (up to their first torn or
// impossible length), never written.
const (
	spoolSuffix       = ".v2.seg"
	legacySpoolSuffix = ".seg"
	segmentMagic      = "SLUICESPOOL\x00"
	segmentVersion    = 2
	segmentHeaderLen  = len(segmentMagic) + 2 + 2 + 4
	frameHeaderSize   = 12
	// maxSpoolRecord bounds a record's length, so that a corrupted length
	// cannot make a reader allocate or skip gigabytes: a NATS message is at
	// most the server's max_payload (64 MiB at most).
	maxSpoolRecord = 128 << 20
)

// OpenSpool opens (or creates) the spool in dir and locks it against other
// processes; Close releases the lock. A directory another process holds is
// refused with ErrSpoolLocked.
func OpenSpool(dir string, opts SpoolOptions) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("open spool %s: size limit %d is not positive", dir, opts.MaxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	lock, err := lockSpool(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, maxBytes: opts.MaxBytes, dropOld: opts.DropOldest, count: opts.Count, lock: lock,
		segBytes: max(min(opts.MaxBytes/8, 64<<20), 64<<10)}
	if s.count == nil {
		s.count = func([]byte) int { return 1 }
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	for _, e := range entries {
		name, legacy := e.Name(), false
		stem, ok := strings.CutSuffix(name, spoolSuffix)
		if !ok {
			if stem, ok = strings.CutSuffix(name, legacySpoolSuffix); !ok {
				continue
			}
			legacy = true
		}
		n, err := strconv.ParseUint(stem, 10, 64)
		if err != nil || n == 0 || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			lock.Close()
			return nil, fmt.Errorf("open spool %s: %w", dir, err)
		}
		s.segs = append(s.segs, spoolSeg{n: n, legacy: legacy, size: info.Size(), events: -1})
		s.total += info.Size()
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].n < s.segs[j].n })
	return s, nil
}

// lockSpool takes the spool directory's lock file, and writes this
// process's id into it for the message another process gets.
func lockSpool(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open spool %s: lock: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
			holder = " (pid " + strings.TrimSpace(string(b)) + ")"
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open spool %s: %w%s: two agents must not share a data_dir", dir, ErrSpoolLocked, holder)
		}
		return nil, fmt.Errorf("open spool %s: lock: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

func (s *Spool) path(seg spoolSeg) string {
	suffix := spoolSuffix
	if seg.legacy {
		suffix = legacySpoolSuffix
	}
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seg.n, suffix))
}

// Len returns the spooled bytes.
func (s *Spool) Len() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Events returns how many events the spool holds (SpoolOptions.Count over
// its records), reading the segments a previous process wrote to count
// them. Safe for concurrent use, also after Close.
func (s *Spool) Events() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for i := range s.segs {
		seg := &s.segs[i]
		if seg.events < 0 {
			seg.events = s.countSegment(*seg)
		}
		n += seg.events
	}
	return n
}

// Append adds records in order and syncs them to disk. It returns how many
// were stored; the rest were refused (ErrSpoolFull) or lost to an I/O error.
// After an I/O error (a full disk) the count is exact: the records of the
// call that reached the segment being written are cut off again (only
// those synced into a segment the call completed count as stored), and the
// next Append tries the same segment again rather than starting another.
// Under DropOldest, droppedEvents counts the events of the segments
// deleted to make room.
func (s *Spool) Append(records [][]byte) (stored int, droppedEvents int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, 0, errors.New("append to spool: closed")
	}
	var refused error
	committed := int64(-1) // the active segment's size before this call wrote to it
	var committedEvents int64
	durable := 0 // records synced into a segment this call completed
	for _, r := range records {
		if len(r) > maxSpoolRecord {
			refused = fmt.Errorf("record of %d bytes exceeds the spool's %d-byte limit", len(r), maxSpoolRecord)
			break
		}
		need := int64(len(r) + frameHeaderSize)
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
			if stored > durable {
				// Make what this call wrote so far durable before moving on.
				if err := s.flushLocked(); err != nil {
					return durable, droppedEvents, s.failedWriteLocked(err, committed, committedEvents)
				}
				durable = stored
			}
			if err := s.rotateLocked(); err != nil {
				return durable, droppedEvents, fmt.Errorf("write spool: %w", err)
			}
			committed = -1
		}
		last := &s.segs[len(s.segs)-1]
		if committed < 0 {
			committed, committedEvents = last.size, last.events
		}
		s.frame = append(s.frame[:0], s.marker[:]...)
		s.frame = binary.LittleEndian.AppendUint32(s.frame, uint32(len(r)))
		crc := crc32.Update(crc32.Checksum(s.frame[:8], castagnoli), castagnoli, r)
		s.frame = binary.LittleEndian.AppendUint32(s.frame, crc)
		if _, err := s.bw.Write(s.frame); err != nil {
			return durable, droppedEvents, s.failedWriteLocked(err, committed, committedEvents)
		}
		if _, err := s.bw.Write(r); err != nil {
			return durable, droppedEvents, s.failedWriteLocked(err, committed, committedEvents)
		}
		last.size += need
		last.events += int64(s.count(r))
		s.total += need
		stored++
	}
	if err := s.flushLocked(); err != nil {
		return durable, droppedEvents, s.failedWriteLocked(err, committed, committedEvents)
	}
	return stored, droppedEvents, refused
}

// failedWriteLocked undoes a failed Append in the active segment: the
// records it wrote there are cut off, back to the segment's committed size,
// so that a reader never sees records the caller was told were lost and a
// full disk costs no new segment per attempt. If the cut fails too, the
// segment is closed (its torn tail is skipped by readers as damage) and the
// next Append starts a fresh one.
func (s *Spool) failedWriteLocked(err error, committed, committedEvents int64) error {
	if s.w == nil {
		return fmt.Errorf("write spool: %w", err)
	}
	last := &s.segs[len(s.segs)-1]
	if committed < 0 {
		committed, committedEvents = last.size, last.events
	}
	s.bw.Reset(s.w) // drop what is still buffered
	if terr := s.w.Truncate(committed); terr == nil {
		s.total += committed - last.size
		last.size, last.events = committed, committedEvents
		return fmt.Errorf("write spool: %w", err)
	}
	if info, serr := s.w.Stat(); serr == nil {
		s.total += info.Size() - last.size
		last.size = info.Size()
	}
	last.events = -1 // count again from what is on disk
	s.w.Close()
	s.w, s.bw = nil, nil
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

// rotateLocked closes the segment being written and starts the next one.
// A segment it cannot start completely (a full disk) is removed again.
func (s *Spool) rotateLocked() error {
	if err := s.flushLocked(); err != nil {
		return err
	}
	if s.w != nil {
		s.w.Close()
		s.w, s.bw = nil, nil
	}
	seg := spoolSeg{n: 1}
	if len(s.segs) > 0 {
		seg.n = s.segs[len(s.segs)-1].n + 1
	}
	if _, err := rand.Read(s.marker[:]); err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	path := s.path(seg)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	hdr := appendSegmentHeader(nil, s.marker)
	if _, err := f.Write(hdr); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("create spool segment: %w", err)
	}
	seg.size = int64(len(hdr))
	s.w, s.bw = f, bufio.NewWriterSize(f, 64<<10)
	s.segs = append(s.segs, seg)
	s.total += seg.size
	return nil
}

func appendSegmentHeader(b []byte, marker [4]byte) []byte {
	b = append(b, segmentMagic...)
	b = binary.LittleEndian.AppendUint16(b, segmentVersion)
	b = append(b, 0, 0)
	return append(b, marker[:]...)
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
			events = s.countSegment(seg)
		}
		if err := s.removeLocked(i); err != nil {
			return 0, false, err
		}
		return events, true, nil
	}
	return 0, false, nil
}

// countSegment counts the events of a segment written before this process
// opened the spool; a damaged record counts as the events it claims.
func (s *Spool) countSegment(seg spoolSeg) int64 {
	var events int64
	dmg, _ := s.readSegment(seg, func(rec []byte) { events += int64(s.count(rec)) })
	return events + int64(dmg.Events)
}

// SpoolDamage is what a reader skipped in a segment: records it could not
// trust and the bytes they took. Events is an estimate, since a damaged
// record's own count may be damaged: each damaged region counts as the
// events its first record claims, at least 1.
type SpoolDamage struct {
	Regions int   // stretches of the segment skipped
	Events  int   // events lost in them (estimated)
	Bytes   int64 // bytes skipped
}

func (d SpoolDamage) String() string {
	return fmt.Sprintf("%d damaged regions, %d bytes, about %d events", d.Regions, d.Bytes, d.Events)
}

// readSegment calls fn with every intact record of seg, in order, and
// returns what it skipped. A torn tail (a record cut by a crash, which its
// writer never reported stored) ends the segment and is not damage.
func (s *Spool) readSegment(seg spoolSeg, fn func(rec []byte)) (SpoolDamage, error) {
	f, err := os.OpenFile(s.path(seg), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return SpoolDamage{}, fmt.Errorf("read spool segment: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return SpoolDamage{}, fmt.Errorf("read spool segment: %w", err)
	}
	data := make([]byte, info.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return SpoolDamage{}, fmt.Errorf("read spool segment: %w", err)
	}
	if seg.legacy {
		scanLegacySegment(data, fn)
		return SpoolDamage{}, nil
	}
	return scanSegment(data, s.count, fn), nil
}

// scanSegment reads a format-2 segment (see Spool) from data, calling fn
// with every record whose frame checks out, and returns what it skipped.
// The records fn gets are slices of data. count estimates the events of a
// damaged record (nil: 1).
func scanSegment(data []byte, count func([]byte) int, fn func(rec []byte)) SpoolDamage {
	var dmg SpoolDamage
	if len(data) < segmentHeaderLen {
		return SpoolDamage{} // a header cut by a crash: nothing was stored
	}
	marker := [4]byte(data[segmentHeaderLen-4 : segmentHeaderLen])
	off := segmentHeaderLen
	if string(data[:len(segmentMagic)]) != segmentMagic || !frameOK(data, off, marker) {
		// A damaged header, or a first frame that does not check out with
		// its marker: the first frame may still name the marker.
		if len(data) >= off+4 {
			if m := [4]byte(data[off : off+4]); frameOK(data, off, m) {
				marker = m
				if string(data[:len(segmentMagic)]) != segmentMagic || data[segmentHeaderLen-4] != m[0] ||
					data[segmentHeaderLen-3] != m[1] || data[segmentHeaderLen-2] != m[2] || data[segmentHeaderLen-1] != m[3] {
					dmg = SpoolDamage{Regions: 1, Bytes: int64(segmentHeaderLen)} // the header, not a record
				}
			}
		}
	}
	for off < len(data) {
		rec, ok, torn := frameAt(data, off, marker)
		if ok {
			fn(rec)
			off += frameHeaderSize + len(rec)
			continue
		}
		if torn && nextFrame(data, off+1, marker) < 0 {
			break // the last record, cut by a crash: never reported stored
		}
		// Damage: skip to the next frame that checks out.
		next := nextFrame(data, off+1, marker)
		if next < 0 {
			next = len(data)
		}
		dmg.Regions++
		dmg.Bytes += int64(next - off)
		dmg.Events += damagedEvents(data[off:next], count)
		off = next
	}
	return dmg
}

// frameAt checks the frame at off: ok when its marker, length and checksum
// are right; torn when the marker is right (or cut short) but the frame
// runs past the end of data, as the last frame of a crashed write does.
func frameAt(data []byte, off int, marker [4]byte) (rec []byte, ok, torn bool) {
	rest := data[off:]
	if len(rest) < frameHeaderSize {
		n := min(len(rest), 4)
		return nil, false, string(rest[:n]) == string(marker[:n])
	}
	if [4]byte(rest[:4]) != marker {
		return nil, false, false
	}
	n := binary.LittleEndian.Uint32(rest[4:])
	if n > maxSpoolRecord {
		return nil, false, false
	}
	if int64(n) > int64(len(rest)-frameHeaderSize) {
		return nil, false, true
	}
	rec = rest[frameHeaderSize : frameHeaderSize+int(n)]
	crc := crc32.Update(crc32.Checksum(rest[:8], castagnoli), castagnoli, rec)
	if crc != binary.LittleEndian.Uint32(rest[8:]) {
		return nil, false, false
	}
	return rec, true, false
}

func frameOK(data []byte, off int, marker [4]byte) bool {
	_, ok, _ := frameAt(data, off, marker)
	return ok
}

// nextFrame returns the offset of the first frame at or after from that
// checks out, or -1.
func nextFrame(data []byte, from int, marker [4]byte) int {
	for from < len(data) {
		i := bytes.Index(data[from:], marker[:])
		if i < 0 {
			return -1
		}
		if _, ok, _ := frameAt(data, from+i, marker); ok {
			return from + i
		}
		from += i + 1
	}
	return -1
}

// damagedEvents estimates the events of a damaged region: what its first
// record claims, if its frame can be read that far, else 1.
func damagedEvents(region []byte, count func([]byte) int) int {
	if count == nil || len(region) <= frameHeaderSize {
		return 1
	}
	n := binary.LittleEndian.Uint32(region[4:])
	if int64(n) > int64(len(region)-frameHeaderSize) {
		return 1
	}
	return max(1, min(count(region[frameHeaderSize:frameHeaderSize+int(n)]), 1<<16))
}

// scanLegacySegment reads a format-1 segment: u32-length-prefixed records,
// up to the first record that runs past the end.
func scanLegacySegment(data []byte, fn func(rec []byte)) {
	for len(data) >= 4 {
		n := binary.LittleEndian.Uint32(data)
		if int64(n) > int64(len(data)-4) {
			return // a torn tail, or a damaged length: format 1 cannot tell
		}
		fn(data[4 : 4+n])
		data = data[4+n:]
	}
}

// SpoolSegment is the oldest segment of a spool, as Oldest hands it out.
type SpoolSegment struct {
	ID      uint64
	Records [][]byte
	Damage  SpoolDamage // what the reader had to skip
}

// Oldest reads every record of the oldest segment, closing it for writes
// first if it is the one being written. ok is false when the spool is
// empty. Pass the segment's ID to Consumed once its records are delivered;
// until then the segment is not deleted to make room.
func (s *Spool) Oldest() (seg SpoolSegment, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) == 0 {
		return SpoolSegment{}, false, nil
	}
	first := s.segs[0]
	if len(s.segs) == 1 && s.w != nil {
		// New records go to a fresh segment from now on.
		if err := s.flushLocked(); err != nil {
			return SpoolSegment{}, false, err
		}
		s.w.Close()
		s.w, s.bw = nil, nil
	}
	seg.ID = first.n
	seg.Damage, err = s.readSegment(first, func(rec []byte) { seg.Records = append(seg.Records, rec) })
	if err != nil {
		return SpoolSegment{}, false, err
	}
	s.reading = first.n
	return seg, true, nil
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
	if err := os.Remove(s.path(seg)); err != nil && !errors.Is(err, os.ErrNotExist) {
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

// Close flushes and closes the segment being written and releases the
// directory's lock. Len and Events still answer afterwards.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.flushLocked()
	if s.w != nil {
		s.w.Close()
		s.w, s.bw = nil, nil
	}
	if s.lock != nil {
		s.lock.Close() // closing the descriptor releases the flock
	}
	return err
}
