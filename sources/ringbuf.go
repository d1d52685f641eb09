package sources

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ringBuffer reads a BPF ring buffer map a chunk at a time. cilium/ebpf's
// ringbuf.Reader takes a lock, copies one record and stores the consumer
// position per record: the store is to a cache line the kernel's reserve
// reads on every record it writes, so each record moved that line between
// the reader's CPU and the producers'. Here a read walks the committed
// records' headers up to chunkBytes, copies them all with one copy,
// publishes the consumer position once, and then hands the records out of
// its copy without a lock. The kernel sees the room freed a chunk late
// (chunkBytes of a ring of at least 256 KiB).
//
// The records are copies, so that Close can unmap the ring while a record
// is still being decoded. Read and SetDeadline are called by one goroutine;
// Close may be called from any, also while Read waits.
//
// Waits. A reader that keeps up with a slow ring parks its goroutine in
// Go's netpoller (the map's fd, duplicated, as an *os.File): its poll
// every few milliseconds is a runtime timer and a goroutine switch. A
// blocking epoll_wait there kept sysmon awake: every call that blocks
// longer than 20 µs has its P taken by sysmon, which then checks again
// every 20 µs for a while, and the built-in config's seven readers, each
// blocking every 5 ms, kept it at that (three quarters of the idle
// agent's CPU). A reader behind a fast ring (its last chunk at least half
// full) waits in epoll_wait on its own epoll, as before: its waits are
// short, and flat out, parking cost more CPU per event than blocking (see
// RATIONALE.md).
type ringBuffer struct {
	mu        sync.Mutex // held by a read of the ring, by an epoll wait, and by Close
	file      *os.File   // a duplicate of the map's fd, in the netpoller
	rc        syscall.RawConn
	epfd      int
	evfd      int // an eventfd: Close makes it readable to end an epoll wait
	events    [2]unix.EpollEvent
	busy      bool   // the last chunk was at least half full: wait in epoll_wait
	cons      []byte // the consumer page, writable
	prod      []byte // the producer page, then the data pages twice
	consPos   *uint64
	prodPos   *uint64
	data      []byte
	mask      uint64
	pos       uint64 // the consumer position, as published
	deadline  time.Time
	applied   time.Time // the file's read deadline
	timedOut  bool      // a wait reached the deadline: report it once the ring is empty
	closed    bool
	closing   atomic.Bool // Close has begun: a wait that fails was ended by it
	closeOnce sync.Once

	// The records of the last chunk: buf[off:n] is yet to be handed out.
	buf    []byte
	off, n int
	chunk  int // chunkBytes; tests make it smaller
}

const (
	ringHeaderSize = 8
	ringBusyBit    = 1 << 31
	ringDiscardBit = 1 << 30
	// chunkBytes is how much of the ring one read copies at most: a
	// fraction of the L1 and L2 caches, so that the records are still
	// there when they are decoded.
	chunkBytes = 16 << 10
)

func newRingBuffer(mapFD int, size int) (*ringBuffer, error) {
	if size <= 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d is not a power of two", size)
	}
	page := os.Getpagesize()
	r := &ringBuffer{epfd: -1, evfd: -1, mask: uint64(size - 1), buf: make([]byte, chunkBytes), chunk: chunkBytes}
	ok := false
	defer func() {
		if !ok {
			r.release()
		}
	}()
	var err error
	if r.cons, err = unix.Mmap(mapFD, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("map the ring buffer's consumer page: %w", err)
	}
	if r.prod, err = unix.Mmap(mapFD, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("map the ring buffer's data pages: %w", err)
	}
	r.consPos = (*uint64)(unsafe.Pointer(&r.cons[0]))
	r.prodPos = (*uint64)(unsafe.Pointer(&r.prod[0]))
	r.data = r.prod[page:]
	r.pos = atomic.LoadUint64(r.consPos)
	if r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create epoll: %w", err)
	}
	if r.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	for _, fd := range []int{mapFD, r.evfd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, fmt.Errorf("add fd to epoll: %w", err)
		}
	}
	// The netpoller needs an fd of its own to close (the map's belongs to
	// the map) in non-blocking mode, which os.NewFile then registers. The
	// flag is the open file's, so the map's fd gets it too: the bpf(2)
	// calls on a map ignore it.
	dup, err := unix.FcntlInt(uintptr(mapFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate the ring buffer's fd: %w", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("make the ring buffer's fd non-blocking: %w", err)
	}
	r.file = os.NewFile(uintptr(dup), "ringbuf")
	if r.rc, err = r.file.SyscallConn(); err != nil {
		return nil, fmt.Errorf("ring buffer's fd: %w", err)
	}
	// A file the netpoller did not take (its registration failed)
	// refuses deadlines, and its waits would block a thread.
	if err := r.file.SetReadDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("ring buffer's fd is not pollable: %w", err)
	}
	ok = true
	return r, nil
}

// SetDeadline bounds how long Read waits for records; a deadline in the
// past makes Read return what the ring holds and then
// os.ErrDeadlineExceeded.
func (r *ringBuffer) SetDeadline(t time.Time) {
	// Kept until a wait needs it: the file's deadline is a runtime timer,
	// and a reader sets its deadline every few dozen records.
	r.deadline = t
}

// Read returns the next record, valid until the next Read. It waits for
// one until the deadline (os.ErrDeadlineExceeded) or Close
// (os.ErrClosed).
func (r *ringBuffer) Read() ([]byte, uint64, error) {
	for {
		for r.off < r.n {
			h := binary.NativeEndian.Uint32(r.buf[r.off:])
			n := int(h &^ (ringBusyBit | ringDiscardBit))
			start := r.off + ringHeaderSize
			r.off = start + (n+7)&^7
			if h&ringDiscardBit != 0 {
				continue
			}
			return r.buf[start : start+n], 0, nil
		}
		if err := r.fill(); err != nil {
			return nil, 0, err
		}
	}
}

// fill copies the next chunk of committed records, waiting for some if
// the ring is empty.
func (r *ringBuffer) fill() error {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return fmt.Errorf("ring buffer: %w", os.ErrClosed)
		}
		n, err := r.copyChunk()
		if err != nil || n > 0 {
			r.mu.Unlock()
			if n > 0 {
				r.off, r.n = 0, n
				r.busy = n >= r.chunk/2
			}
			return err
		}
		if r.timedOut {
			r.mu.Unlock()
			r.timedOut = false
			return os.ErrDeadlineExceeded
		}
		if r.busy {
			// Under r.mu: Close closes the epoll only after this.
			err = r.waitEpoll()
			r.mu.Unlock()
		} else {
			r.mu.Unlock()
			err = r.wait()
		}
		if err != nil {
			return err
		}
	}
}

// waitEpoll is wait in epoll_wait; r.mu is held.
func (r *ringBuffer) waitEpoll() error {
	timeout := -1
	if !r.deadline.IsZero() {
		timeout = int(max(0, (time.Until(r.deadline)+time.Millisecond-1)/time.Millisecond))
	}
	for {
		n, err := unix.EpollWait(r.epfd, r.events[:], timeout)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for ring buffer: %w", err)
		}
		for _, ev := range r.events[:n] {
			if int(ev.Fd) == r.evfd {
				return fmt.Errorf("ring buffer: %w", os.ErrClosed)
			}
		}
		if n == 0 {
			r.timedOut = true
		}
		return nil
	}
}

// copyChunk copies the committed records from the consumer position on,
// at most chunkBytes of them unless the first is larger, into r.buf, and
// publishes the position past them. It returns how many bytes it copied.
func (r *ringBuffer) copyChunk() (int, error) {
	prod := atomic.LoadUint64(r.prodPos)
	pos := r.pos
	for pos < prod {
		if prod-pos < ringHeaderSize {
			return 0, fmt.Errorf("read ring buffer record header: short by %d bytes", ringHeaderSize-(prod-pos))
		}
		// An atomic load of the length: it orders the record's bytes
		// after the kernel's commit (the busy bit cleared by an xchg).
		h := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[pos&r.mask])))
		if h&ringBusyBit != 0 {
			if pos == r.pos {
				// Nothing to hand out before this record: it is being
				// written now, and is committed within the producer's
				// program run.
				prod = atomic.LoadUint64(r.prodPos)
				continue
			}
			break
		}
		size := uint64(ringHeaderSize + (int(h&^(ringBusyBit|ringDiscardBit))+7)&^7)
		if prod-pos < size {
			return 0, fmt.Errorf("read ring buffer record: %d bytes past the producer position", size-(prod-pos))
		}
		if pos != r.pos && pos+size-r.pos > uint64(r.chunk) {
			break
		}
		pos += size
	}
	n := int(pos - r.pos)
	if n == 0 {
		return 0, nil
	}
	if n > len(r.buf) {
		r.buf = make([]byte, n)
	}
	// The data pages are mapped twice in a row, so a run that wraps round
	// the end of the ring is contiguous.
	start := r.pos & r.mask
	copy(r.buf, r.data[start:start+uint64(n)])
	r.pos = pos
	atomic.StoreUint64(r.consPos, pos)
	return n, nil
}

// wait blocks until the kernel wakes the reader, the deadline passes (the
// next empty ring then ends the read) or Close runs, in the netpoller.
func (r *ringBuffer) wait() error {
	// The netpoller's registration is edge-triggered: RawConn.Read clears
	// the fd's readiness before it calls the function, so a wakeup after
	// the check below ends the wait at once. The check reads the ring,
	// which Close unmaps only once the file is closed, and closing waits
	// for this call to end.
	if !r.deadline.Equal(r.applied) {
		// Fails only once the file is closed, which the wait reports.
		r.file.SetReadDeadline(r.deadline)
		r.applied = r.deadline
	}
	err := r.rc.Read(func(uintptr) bool {
		return atomic.LoadUint64(r.prodPos) != r.pos
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		r.timedOut = true
		return nil
	case r.closing.Load():
		return fmt.Errorf("ring buffer: %w", os.ErrClosed)
	}
	return fmt.Errorf("wait for ring buffer: %w", err)
}

// Close ends a waiting Read, unmaps the ring and closes its fd. Read
// returns os.ErrClosed once it has handed out the records it had copied.
// Safe for concurrent use; a second Close returns nil.
func (r *ringBuffer) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.closing.Store(true)
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(r.evfd, one[:]) // ends an epoll wait; an eventfd write only fails at its limit
		// Ends a netpoller wait, and returns once no call on the file runs.
		ferr := r.file.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.closed = true
		err = errors.Join(ferr, r.release())
	})
	return err
}

// release unmaps the ring and closes the descriptors (the file unless
// Close did); r.mu is held or r not yet shared.
func (r *ringBuffer) release() error {
	var errs []error
	for _, m := range [][]byte{r.prod, r.cons} {
		if m != nil {
			errs = append(errs, unix.Munmap(m))
		}
	}
	r.prod, r.cons, r.data, r.consPos, r.prodPos = nil, nil, nil, nil, nil
	if r.file != nil && !r.closing.Load() { // Close closed it
		errs = append(errs, r.file.Close())
	}
	for _, fd := range []*int{&r.epfd, &r.evfd} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	return errors.Join(errs...)
}
