//go:build !wasip1

package sluice

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// Outside Wasm (go test on the SDK or on a stage's own logic) the host
// functions record what they are given, so tests can assert on logs and
// counters.

var nativeHost struct {
	sync.Mutex
	logs     []nativeLog
	errMsg   string
	counters map[string]int64
	now      func() time.Time
}

type nativeLog struct {
	level Level
	msg   string
}

func hostLog(level Level, msg string) {
	nativeHost.Lock()
	defer nativeHost.Unlock()
	nativeHost.logs = append(nativeHost.logs, nativeLog{level, msg})
}

func hostSetError(msg string) {
	nativeHost.Lock()
	defer nativeHost.Unlock()
	nativeHost.errMsg = msg
}

func hostCounterAdd(name string, delta int64) {
	nativeHost.Lock()
	defer nativeHost.Unlock()
	if nativeHost.counters == nil {
		nativeHost.counters = make(map[string]int64)
	}
	nativeHost.counters[name] += delta
}

func hostNow() int64 {
	nativeHost.Lock()
	now := nativeHost.now
	nativeHost.Unlock()
	if now != nil {
		return now().UnixNano()
	}
	return time.Now().UnixNano()
}

// The functions below let a stage's own tests (go test, outside Wasm) drive
// its registered handlers as the host would: InitForTest, then
// ProcessForTest and TickForTest. They are not part of Wasm builds.

// Result is one entry of a stage's output, for tests.
type Result struct {
	// Index is the input the entry derives from, -1 for none (ticks,
	// summaries).
	Index int
	// Keep is true for an input passed on unchanged; Event is then that
	// input's bytes.
	Keep bool
	// Event is the emitted event, a msgpack map.
	Event []byte
}

// InitForTest runs the stage's init with params encoded as a msgpack map
// (nil for none).
func InitForTest(params []byte) error { return current.init(params) }

// ProcessForTest runs one batch of encoded events through the stage.
func ProcessForTest(events [][]byte) ([]Result, error) {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(events)))
	for _, ev := range events {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ev)))
		b = append(b, ev...)
	}
	res, err := current.process(b)
	if err != nil {
		return nil, err
	}
	return parseResultForTest(res, events)
}

// TickForTest runs the stage's tick handler.
func TickForTest(now time.Time) ([]Result, error) {
	res, err := current.tick(now.UnixNano())
	if err != nil {
		return nil, err
	}
	return parseResultForTest(res, nil)
}

func parseResultForTest(res []byte, in [][]byte) ([]Result, error) {
	n := binary.LittleEndian.Uint32(res)
	off := 4
	out := make([]Result, 0, n)
	for range n {
		op, idx := res[off], binary.LittleEndian.Uint32(res[off+1:])
		off += 5
		r := Result{Index: int(idx)}
		if idx == noInput {
			r.Index = -1
		}
		switch op {
		case opKeep:
			if int(idx) >= len(in) {
				return nil, fmt.Errorf("KEEP of input %d of %d", idx, len(in))
			}
			r.Keep, r.Event = true, in[idx]
		case opEmit:
			l := int(binary.LittleEndian.Uint32(res[off:]))
			off += 4
			r.Event = append([]byte(nil), res[off:off+l]...)
			off += l
		}
		out = append(out, r)
	}
	return out, nil
}
