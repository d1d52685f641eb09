package pipeline

import "runtime"

// A source's reader decodes events one after another into an arena, and
// each event's Data is a piece of it; a stage's host copies the events a
// guest emits out of its memory into arenas the same way. An arena is
// referenced by every event put into it for as long as any of them
// lives: in a queue, a stage, a tap, a sink's spool or retry, wherever the
// pipeline took it. Only the GC knows when the last piece is gone, so the
// GC decides: every arena handed out carries a finalizer, which runs
// once the GC has found the arena unreachable and puts it back in the
// pool instead of letting it be freed. No event can see an arena reused
// under it, since an arena reachable from any event is not finalized.
//
// Recycling spares the reader allocating and zeroing 64 KiB every three
// hundred or so events, and, more, it spares the GC cycles that
// allocation triggered: a reader at a million events a second allocated
// some 200 MB/s, and with the agent's small heap the GC then marked most
// of the time, which makes every pointer write pay a write barrier. The
// pool holds at most arenaPoolSize arenas (16 MiB); an arena finalized
// when it is full is freed. Arenas are small (they were 256 KiB) so that
// one long-lived event (a spooled one, say) keeps little memory alive
// with it.
//
// The pool's size sets how often a reader running flat out has the GC
// run: each cycle refills the pool with the arenas that died since the
// last, and only arenas beyond it grow the heap towards the next cycle.
// At 4 MiB a 64-byte synthetic record cost the agent 333-456 ns of CPU,
// a third of it the collector's; at 16 MiB, 242-320 (make bench's
// null/64B, RATIONALE.md). The memory is what a reader at that rate has
// in flight between two cycles anyway; kept in the pool once the rate
// drops, it would be held for nothing, so a reader whose ring stayed
// empty for a poll interval trims the pool to arenaPoolIdle (4 MiB),
// which a host's usual rates do not exceed between two cycles.
const (
	ArenaSize     = 64 << 10
	arenaPoolSize = 256
	arenaPoolIdle = 64
)

type arena = [ArenaSize]byte

var arenaPool = make(chan *arena, arenaPoolSize)

// NewArena returns an empty arena of ArenaSize bytes: a recycled one when
// the pool has one, else a new one. Its bytes are not zeroed: a reader
// only hands out what it wrote.
func NewArena() []byte {
	var a *arena
	select {
	case a = <-arenaPool:
	default:
		a = new(arena)
	}
	runtime.SetFinalizer(a, recycleArena)
	return a[:0:ArenaSize]
}

// recycleArena is the finalizer of the arenas NewArena hands out: it puts
// an arena nobody refers to any more back in the pool, or lets it go when
// the pool is full.
func recycleArena(a *arena) {
	select {
	case arenaPool <- a:
	default:
	}
}

// TrimArenaPool lets the arenas the pool holds beyond arenaPoolIdle go
// (to the GC: nothing else refers to a pooled arena). Cheap when there
// are none: a source's reader calls it whenever its ring has been idle.
func TrimArenaPool() {
	for len(arenaPool) > arenaPoolIdle {
		select {
		case <-arenaPool:
		default:
			return
		}
	}
}
