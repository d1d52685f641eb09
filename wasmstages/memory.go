package wasmstages

import (
	"os"
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// limitedAllocator backs each instance's linear memory with a limitedMemory.
// It is how the memory limit is enforced, instead of wazero's
// WithMemoryLimitPages, for two reasons (see RATIONALE.md): a refused
// memory.grow is recorded, so that the failure it causes is counted as
// "oom" rather than as an anonymous trap; and a module that declares a
// maximum above the limit still loads (the limit applies when it grows).
//
// The memory is a private anonymous mapping of the whole limit, reserved
// (MAP_NORESERVE) but committed only as the guest touches pages: growing
// never copies (a Go slice grown to the limit held the old and the new
// array at once, twice the limit), and discarding an instance unmaps it,
// so that the pages of a memory bomb go back to the kernel at once instead
// of staying in the Go heap. Where the kernel refuses the reservation
// (strict overcommit, an address-space rlimit) the memory is a Go slice.
type limitedAllocator struct {
	limit uint64
	mem   *limitedMemory // the memory the last Allocate made
}

func (a *limitedAllocator) Allocate(capacity, maxBytes uint64) experimental.LinearMemory {
	m := &limitedMemory{limit: min(a.limit, maxBytes)}
	if region, err := reserve(m.limit); err == nil {
		m.mapped = region
		m.buf = region[:0]
	} else {
		m.buf = make([]byte, 0, min(capacity, m.limit))
	}
	a.mem = m
	return m
}

// reserve maps size bytes of zeroed, not yet committed memory.
func reserve(size uint64) ([]byte, error) {
	if size == 0 {
		return nil, unix.EINVAL
	}
	page := uint64(os.Getpagesize())
	return unix.Mmap(-1, 0, int((size+page-1)/page*page), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
}

// limitedMemory is one linear memory. wazero calls Reallocate from the
// goroutine running the guest; refused is read by the host after the call
// returns, and reset before the next, on that same goroutine, but an atomic
// keeps a concurrent metrics read honest.
type limitedMemory struct {
	buf     []byte
	limit   uint64
	refused atomic.Bool
	mapped  []byte // the reservation; nil when buf is a Go slice
}

// Reallocate grows the memory to size bytes, or returns nil (memory.grow
// returns -1 to the guest) past the limit.
func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused.Store(true)
		return nil
	}
	if m.mapped != nil {
		// Pages past the old length were never touched: still zero.
		m.buf = m.mapped[:size]
		return m.buf
	}
	if size <= uint64(cap(m.buf)) {
		// The bytes past the old length were never visible to the guest,
		// so they are still zero, as grown wasm memory must be.
		m.buf = m.buf[:size]
		return m.buf
	}
	// Grow geometrically (capped at the limit) so that a guest growing
	// page by page does not copy its memory at every step.
	newCap := min(max(size, 2*uint64(cap(m.buf))), m.limit)
	buf := make([]byte, size, newCap)
	copy(buf, m.buf)
	m.buf = buf
	return buf
}

// Free releases the memory; wazero calls it when the instance closes, after
// its last call (a call cut short by a deadline closes it only once the
// call has returned).
func (m *limitedMemory) Free() {
	if m.mapped != nil {
		unix.Munmap(m.mapped)
		m.mapped = nil
	}
	m.buf = nil
}

// size is the memory the guest has grown to.
func (m *limitedMemory) size() uint64 { return uint64(len(m.buf)) }

var _ experimental.MemoryAllocator = (*limitedAllocator)(nil)
