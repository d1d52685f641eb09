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
	// findKeyCalls counts hostFindKey calls, for tests of the key table.
	findKeyCalls int
}

type nativeLog struct {
	level Level
	msg   string
}

// hostFindKey does natively what the host's find_key does: it is the
// SDK's own scanner over each event, which the host's mirrors.
func hostFindKey(batch []byte, key string, out []uint32) int {
	if len(batch) < 4 {
		return -1
	}
	count := binary.LittleEndian.Uint32(batch)
	if uint64(count) > uint64(len(batch)-4)/4 || len(out) < 2*int(count) {
		return -1
	}
	off := 4
	for i := range int(count) {
		if len(batch)-off < 4 {
			return -1
		}
		n := int(binary.LittleEndian.Uint32(batch[off:]))
		off += 4
		if n > len(batch)-off {
			return -1
		}
		s, e := findKey(batch[off:off+n:off+n], key)
		off += n
		out[2*i], out[2*i+1] = uint32(s), uint32(e) // -1 is findKeyMissing
	}
	nativeHost.Lock()
	nativeHost.findKeyCalls++
	nativeHost.Unlock()
	return int(count)
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
		case opSet:
			l := int(binary.LittleEndian.Uint32(res[off:]))
			off += 4
			if int(idx) >= len(in) {
				return nil, fmt.Errorf("SET of input %d of %d", idx, len(in))
			}
			ev, err := setForTest(in[idx], res[off:off+l])
			if err != nil {
				return nil, err
			}
			off += l
			// The host passes on an input a SET leaves as it was.
			r.Event, r.Keep = ev, string(ev) == string(in[idx])
		}
		out = append(out, r)
	}
	return out, nil
}

// setForTest makes the event a SET entry describes, as the host does: the
// input with each of fields' keys set, in place where it has the key, after
// its fields where not.
func setForTest(input, fields []byte) ([]byte, error) {
	n, i := mapHeader(fields, 0)
	if i < 0 || skip(fields, 0) != len(fields) {
		return nil, fmt.Errorf("SET fields % x: not one well-formed msgpack map", fields)
	}
	e := Event{raw: input, index: 0, input: true}
	for range n {
		ks, ke := strBounds(fields, i)
		if ks < 0 || fields[i] == 0xc4 || fields[i] == 0xc5 || fields[i] == 0xc6 {
			return nil, fmt.Errorf("SET fields: a key at byte %d is not a str", i)
		}
		ve := skip(fields, ke)
		e.SetValue(string(fields[ks:ke]), Value{raw: fields[ke:ve]})
		i = ve
	}
	return e.appendEncoded(nil)
}
