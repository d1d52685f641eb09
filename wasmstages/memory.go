package wasmstages

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// limitedAllocator backs each instance's linear memory with a limitedMemory.
// It is how the memory limit is enforced, instead of wazero's
// WithMemoryLimitPages, for two reasons (see RATIONALE.md): a refused
// memory.grow is recorded, so that the failure it causes is counted as
// "oom" rather than as an anonymous trap; and a module that declares a
// maximum above the limit still loads (the limit applies when it grows).
type limitedAllocator struct {
	limit uint64
	mem   *limitedMemory // the memory the last Allocate made
}

func (a *limitedAllocator) Allocate(capacity, maxBytes uint64) experimental.LinearMemory {
	m := &limitedMemory{limit: min(a.limit, maxBytes)}
	m.buf = make([]byte, 0, min(capacity, m.limit))
	a.mem = m
	return m
}

// limitedMemory is one linear memory. wazero calls Reallocate from the
// goroutine running the guest; refused is read by the host after the call
// returns, and reset before the next, on that same goroutine, but an atomic
// keeps a concurrent metrics read honest.
type limitedMemory struct {
	buf     []byte
	limit   uint64
	refused atomic.Bool
}

// Reallocate grows the memory to size bytes, or returns nil (memory.grow
// returns -1 to the guest) past the limit.
func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused.Store(true)
		return nil
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

func (m *limitedMemory) Free() { m.buf = nil }

var _ experimental.MemoryAllocator = (*limitedAllocator)(nil)
