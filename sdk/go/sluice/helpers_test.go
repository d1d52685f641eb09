//go:build !wasip1

package sluice

import (
	"encoding/binary"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// kv is one field of a test event, in order.
type kv struct {
	k string
	v any
}

// encodeEvent encodes fields in order as a msgpack map, the way the decoder
// lays out events (vmihailenco/msgpack would not keep the order).
func encodeEvent(tb testing.TB, fields ...kv) []byte {
	tb.Helper()
	var w Writer
	w.BeginMap()
	for _, f := range fields {
		w.Key(f.k).Any(f.v)
	}
	w.EndMap()
	return append([]byte(nil), w.Bytes()...)
}

// execEvent is a trace_exec event as the agent encodes it.
func execEvent(tb testing.TB, seq int, comm string, args ...string) []byte {
	return encodeEvent(tb,
		kv{"time", "2026-12-01T10:27:32.530410107Z"},
		kv{"host", "vm"},
		kv{"source", "exec"},
		kv{"gadget", "trace_exec"},
		kv{"seq", seq},
		kv{"timestamp", "2026-12-01T10:27:32.530410107Z"},
		kv{"timestamp_raw", 1670079468483},
		kv{"mntns_id", 4026531832},
		kv{"pid", 16588},
		kv{"ppid", 16524},
		kv{"uid", 1000},
		kv{"uid_name", "alice"},
		kv{"gid", 1000},
		kv{"gid_name", "alice"},
		kv{"comm", comm},
		kv{"filename", "/bin/" + comm},
		kv{"ret", -2},
		kv{"ret_error", "ENOENT"},
		kv{"args", args},
	)
}

// encodeBatch lays events out as the host does.
func encodeBatch(events ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(events)))
	for _, e := range events {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

// resultEntry is one parsed entry of a result.
type resultEntry struct {
	op    byte
	index uint32
	data  []byte // an EMIT's event, a SET's fields
}

// parseResult parses a result strictly, as the host must.
func parseResult(tb testing.TB, res []byte) []resultEntry {
	tb.Helper()
	if len(res) < 4 {
		tb.Fatalf("result of %d bytes has no count", len(res))
	}
	n := binary.LittleEndian.Uint32(res)
	off := 4
	var out []resultEntry
	for i := uint32(0); i < n; i++ {
		if len(res)-off < 5 {
			tb.Fatalf("entry %d truncated", i)
		}
		e := resultEntry{op: res[off], index: binary.LittleEndian.Uint32(res[off+1:])}
		off += 5
		switch e.op {
		case opKeep:
		case opSet:
			l := int(binary.LittleEndian.Uint32(res[off:]))
			off += 4
			if l > len(res)-off {
				tb.Fatalf("entry %d: length %d past the end", i, l)
			}
			e.data = res[off : off+l]
			off += l
			seen := map[string]bool{}
			n, at := mapHeader(e.data, 0)
			if at < 0 || skip(e.data, 0) != len(e.data) {
				tb.Fatalf("entry %d: SET fields not one msgpack map: %x", i, e.data)
			}
			for range n {
				ks, ke := strBounds(e.data, at)
				if ks < 0 || e.data[at] >= 0xc4 && e.data[at] <= 0xc6 || seen[string(e.data[ks:ke])] {
					tb.Fatalf("entry %d: SET fields with a key not a str or twice: %x", i, e.data)
				}
				seen[string(e.data[ks:ke])] = true
				at = skip(e.data, ke)
			}
		case opEmit:
			l := int(binary.LittleEndian.Uint32(res[off:]))
			off += 4
			if l > len(res)-off {
				tb.Fatalf("entry %d: length %d past the end", i, l)
			}
			e.data = res[off : off+l]
			off += l
			if _, i := mapHeader(e.data, 0); i < 0 || skip(e.data, 0) != len(e.data) {
				tb.Fatalf("entry %d: not one msgpack map: %x", i, e.data)
			}
		default:
			tb.Fatalf("entry %d: op %d", i, e.op)
		}
		out = append(out, e)
	}
	if off != len(res) {
		tb.Fatalf("result has %d trailing bytes", len(res)-off)
	}
	return out
}

// decodeMap decodes an event with an independent decoder.
func decodeMap(tb testing.TB, b []byte) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		tb.Fatalf("decode %x: %v", b, err)
	}
	return m
}

// keys returns the keys of an encoded map in order.
func keys(tb testing.TB, b []byte) []string {
	tb.Helper()
	var ks []string
	if !eachEntry(b, func(k []byte, _ Value) bool { ks = append(ks, string(k)); return true }) {
		tb.Fatalf("malformed map %x", b)
	}
	return ks
}

// useStage gives the test a fresh stage, so registrations do not leak
// between tests, and restores the previous one afterwards.
func useStage(tb testing.TB) *stage {
	tb.Helper()
	prev := current
	current = &stage{}
	nativeHost.Lock()
	nativeHost.logs, nativeHost.errMsg, nativeHost.counters, nativeHost.now = nil, "", nil, nil
	nativeHost.Unlock()
	tb.Cleanup(func() { current = prev })
	return current
}

func mustInit(tb testing.TB, s *stage, params map[string]any) {
	tb.Helper()
	var raw []byte
	if params != nil {
		var err error
		if raw, err = msgpack.Marshal(params); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.init(raw); err != nil {
		tb.Fatalf("init: %v", err)
	}
}
