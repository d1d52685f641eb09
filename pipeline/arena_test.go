package pipeline

import (
	"bytes"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// An arena goes back to the pool once nothing refers to it, and never
// while an event's Data (a piece of it) is still held somewhere.
func TestArenaRecycledOnlyWhenUnreachable(t *testing.T) {
	held := NewArena()
	held = append(held, "an event still in a queue"...)
	data := held[:len(held):len(held)] // what an Event's Data is
	heldAddr := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	held = nil

	dropped := NewArena()
	dropped = append(dropped, "an event written and gone"...)
	droppedAddr := uintptr(unsafe.Pointer(unsafe.SliceData(dropped)))
	dropped = nil

	deadline := time.Now().Add(10 * time.Second)
	found := false
	for !found {
		if time.Now().After(deadline) {
			t.Fatal("the unreachable arena never came back to the pool")
		}
		runtime.GC() // finalizers run after it, on their own goroutine
		for drained := false; !drained; {
			select {
			case a := <-arenaPool:
				addr := uintptr(unsafe.Pointer(a))
				if addr == heldAddr {
					t.Fatal("an arena came back to the pool while an event's Data was in it")
				}
				if addr == droppedAddr {
					found = true
				}
				// A reader reusing it writes over it.
				for i := range a {
					a[i] = 0xff
				}
			default:
				drained = true
			}
		}
		if !found {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !bytes.Equal(data, []byte("an event still in a queue")) {
		t.Fatalf("held Data changed to %q", data)
	}
	runtime.KeepAlive(data)
}

// A pool filled by a burst is trimmed to its idle size, and not below.
func TestTrimArenaPool(t *testing.T) {
	// Other tests' arenas may be pooled too: start from what is there.
	for len(arenaPool) < arenaPoolSize {
		recycleArena(new(arena))
	}
	TrimArenaPool()
	if n := len(arenaPool); n != arenaPoolIdle {
		t.Errorf("pool holds %d arenas after a trim, want %d", n, arenaPoolIdle)
	}
	TrimArenaPool()
	if n := len(arenaPool); n != arenaPoolIdle {
		t.Errorf("pool holds %d arenas after a second trim, want %d", n, arenaPoolIdle)
	}
}
