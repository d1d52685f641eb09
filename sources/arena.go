package sources

import "runtime"

// A reader decodes events one after another into an arena, and each
// event's Data is a piece of it. An arena is referenced by every event
// decoded into it for as long as any of them lives: in a queue, a stage,
// a tap, a sink's spool or retry, wherever the pipeline took it. Only the
// GC knows when the last piece is gone, so the GC decides: every arena a
// reader takes carries a finalizer, which runs once the GC has found the
// arena unreachable and puts it back in the pool instead of letting it be
// freed. No event can see an arena reused under it, since an arena
// reachable from any event is not finalized.
//
// Recycling spares the reader allocating and zeroing 64 KiB every three
// hundred or so events, and, more, it spares the GC cycles that
// allocation triggered: a reader at a million events a second allocated
// some 200 MB/s, and with the agent's small heap the GC then marked most
// of the time, which makes every pointer write pay a write barrier. The
// pool holds at most arenaPoolSize arenas (arenaPoolSize * arenaSize
// bytes, 4 MiB); an arena finalized when it is full is freed. Arenas are
// small (they were 256 KiB) so that one long-lived event (a spooled one,
// say) keeps little memory alive with it.
const (
	arenaSize     = 64 << 10
	arenaPoolSize = 64
)

type arena = [arenaSize]byte

var arenaPool = make(chan *arena, arenaPoolSize)

// newArena returns an empty arena of arenaSize bytes: a recycled one when
// the pool has one, else a new one. Its bytes are not zeroed: a reader
// only hands out what it wrote.
func newArena() []byte {
	var a *arena
	select {
	case a = <-arenaPool:
	default:
		a = new(arena)
	}
	runtime.SetFinalizer(a, recycleArena)
	return a[:0:arenaSize]
}

// recycleArena is the finalizer of the arenas newArena hands out: it puts
// an arena nobody refers to any more back in the pool, or lets it go when
// the pool is full.
func recycleArena(a *arena) {
	select {
	case arenaPool <- a:
	default:
	}
}
