package wasmstages

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// synthLike returns an event laid out as the decoder lays out the bench's
// synthetic records (str8 timestamps), with the given comm, seq and pid,
// and key in place of "comm".
func synthLike(key, comm string, seq, pid uint64) []byte {
	str8 := func(b []byte, s string) []byte { return append(append(b, 0xd9, byte(len(s))), s...) }
	b := codec.AppendMapHeader(nil, 15)
	b = codec.AppendString(b, "time")
	b = str8(b, "2026-12-03T23:31:01.315836038Z")
	for _, kv := range [][2]string{{"host", "vm"}, {"source", "synth64"}, {"gadget", "synth64"}} {
		b = codec.AppendString(codec.AppendString(b, kv[0]), kv[1])
	}
	b = codec.AppendUint(codec.AppendString(b, "seq"), seq)
	b = str8(codec.AppendString(b, "timestamp"), "2026-12-03T23:31:01.315836038Z")
	b = codec.AppendUint(codec.AppendString(b, "timestamp_raw"), 22498701394912+seq)
	b = codec.AppendUint(codec.AppendString(b, "kseq"), seq)
	b = codec.AppendUint(codec.AppendString(b, "pid"), pid)
	b = codec.AppendUint(codec.AppendString(b, "tid"), pid)
	b = codec.AppendString(codec.AppendString(b, key), comm)
	for _, k := range []string{"burst", "index", "value", "flags"} {
		b = codec.AppendUint(codec.AppendString(b, k), seq%7)
	}
	return b
}

// findEach is find_key's answer for each event of a batch, computed with
// findKeyBatch (which replays walks) and with a walk of each event alone.
func findEach(t *testing.T, key string, events ...[]byte) (batch, alone [][2]uint32) {
	t.Helper()
	out := make([]byte, 8*len(events))
	if n := findKeyBatch(encodeBatchOf(events...), []byte(key), out); int(n) != len(events) {
		t.Fatalf("findKeyBatch = %d, want %d", n, len(events))
	}
	for i, ev := range events {
		batch = append(batch, [2]uint32{binary.LittleEndian.Uint32(out[8*i:]), binary.LittleEndian.Uint32(out[8*i+4:])})
		s, e := findKeyIn(ev, []byte(key))
		alone = append(alone, [2]uint32{s, e})
	}
	return batch, alone
}

// A replayed answer is the walk's answer: events that differ from the one
// whose walk is replayed wherever the walk looked are walked, whatever the
// difference (a value's size, a key's length or bytes, a key equal to the
// one sought appearing earlier, the event cut short, the map's count).
func TestFindKeyReplayAgreesWithWalk(t *testing.T) {
	base := synthLike("comm", "sluicebench", 1000, 16523)
	variants := map[string][]byte{
		"same layout":         synthLike("comm", "sh", 1001, 16524),
		"longer comm":         synthLike("comm", "a-much-longer-comm", 1002, 16523),
		"pid grows a byte":    synthLike("comm", "sluicebench", 1003, 70000),
		"seq shrinks":         synthLike("comm", "sluicebench", 3, 16523),
		"key renamed":         synthLike("cmd", "sluicebench", 1004, 16523),
		"same-length key":     synthLike("mmoc", "sluicebench", 1005, 16523),
		"key missing":         synthLike("command", "sluicebench", 1006, 16523),
		"cut short":           base[:len(base)-30],
		"cut in the value":    base[:len(synthLike("comm", "sluicebench", 1000, 16523))-60],
		"an empty map":        codec.AppendMapHeader(nil, 0),
		"host is comm":        []byte(strings.Replace(string(base), "\xa4host", "\xa4comm", 1)),
		"time is a fixstr":    append(append(codec.AppendString(codec.AppendMapHeader(nil, 2), "time"), 0xa1, 'x'), append(codec.AppendString(nil, "comm"), 0xa1, 'y')...),
		"fewer entries":       append([]byte{0x89}, base[1:]...),
		"timestamp is longer": []byte(strings.Replace(string(base), "\xd9\x1e2026-12-03T23:31:01.315836038Z\xadtimestamp_raw", "\xd9\x1f2026-12-03T23:31:01.3158360389Z\xadtimestamp_raw", 1)),
	}
	for name, v := range variants {
		t.Run(name, func(t *testing.T) {
			for _, key := range []string{"comm", "pid", "flags", "nope"} {
				// The variant after a run of the base (its walk recorded and
				// replayed), and the base after the variant.
				events := [][]byte{base, base, v, base, v, v, base}
				batch, alone := findEach(t, key, events...)
				for i := range events {
					if batch[i] != alone[i] {
						t.Errorf("key %s, event %d: batch answer %v, walked alone %v", key, i, batch[i], alone[i])
					}
				}
			}
		})
	}
}

// Whatever one byte of an event is changed to, the event after a run of
// the original gets the answer a walk of it alone gives.
func TestFindKeyReplayEveryByteChanged(t *testing.T) {
	base := synthLike("comm", "sluicebench", 1000, 16523)
	for _, key := range []string{"comm", "flags"} {
		for p := range base {
			for _, x := range []byte{0x01, 0x20, 0x80, 0xff} {
				v := append([]byte(nil), base...)
				v[p] ^= x
				batch, alone := findEach(t, key, base, base, v)
				if batch[2] != alone[2] {
					t.Errorf("key %s, byte %d ^ %#x: batch answer %v, walked alone %v", key, p, x, batch[2], alone[2])
				}
			}
		}
	}
}

// The walk of an event like the one before it is replayed, not repeated;
// any byte it branched on tells the next event apart.
func TestKeyWalkReplays(t *testing.T) {
	a, b := synthLike("comm", "sluicebench", 1000, 16523), synthLike("comm", "sluicebench", 1001, 16530)
	var w keyWalk
	s, e := walkKey(a, []byte("comm"), &w)
	if s == findKeyMissing {
		t.Fatal("comm not found")
	}
	if w.n == 0 {
		t.Fatal("the walk of a synthetic event was not kept for replay")
	}
	if rs, re, ok := w.replay(b); !ok || rs != s || re != e {
		t.Fatalf("replay on an event of the same layout = %d, %d, %v; want %d, %d, true", rs, re, ok, s, e)
	}
	// Every bit the walk's steps depended on, changed, fails the replay.
	var noted keyWalk
	walkKey(a, []byte("comm"), &noted)
	for k := range noted.nb {
		for bit := range 8 {
			if noted.bits[k]&(1<<bit) == 0 {
				continue
			}
			c := append([]byte(nil), b...)
			c[noted.at[k]] ^= 1 << bit
			if _, _, ok := w.replay(c); ok {
				t.Errorf("bit %d of byte %d (offset %d) changed, replay still answers", bit, k, noted.at[k])
			}
		}
	}
	// Nor is the value found part of the layout: an event with a longer
	// comm is replayed, and gets its own value's bounds.
	long := synthLike("comm", "a-much-longer-comm", 1002, 16523)
	if rs, re, ok := w.replay(long); !ok || rs != s || string(long[rs:re]) != "\xb2a-much-longer-comm" {
		t.Errorf("replay on an event with a longer comm = %d, %d, %v", rs, re, ok)
	}
	// A fixint's value is not its size: an event that differs there is
	// replayed.
	for _, key := range []string{"comm", "nope"} {
		var x keyWalk
		walkKey(synthLike("comm", "sluicebench", 7000, 16523), []byte(key), &x)
		if _, _, ok := x.replay(synthLike("comm", "sluicebench", 7001, 16523)); !ok {
			t.Errorf("key %s: an event whose fixints differ is not replayed", key)
		}
	}
	if _, _, ok := w.replay(b[:e-1]); ok {
		t.Error("replay answers for an event cut before the value's end")
	}
}

// A walk through a nested value is not kept: replay checks only bytes
// whose values decide every step.
func TestKeyWalkNotKeptThroughContainers(t *testing.T) {
	ev := codec.AppendMapHeader(nil, 2)
	ev = codec.AppendString(ev, "args")
	ev = codec.AppendArrayHeader(ev, 2)
	ev = codec.AppendString(ev, "sh")
	ev = codec.AppendString(ev, "-c")
	ev = codec.AppendString(ev, "comm")
	ev = codec.AppendString(ev, "sh")
	var w keyWalk
	if s, _ := walkKey(ev, []byte("comm"), &w); s == findKeyMissing {
		t.Fatal("comm not found")
	}
	if w.n != 0 {
		t.Error("a walk that stepped over an array was kept for replay")
	}
	// Its answers stay the walk's.
	other := []byte(strings.Replace(string(ev), "\x92\xa2sh\xa2-c", "\x92\xa2sh\xa2-x", 1))
	batch, alone := findEach(t, "comm", ev, ev, other, ev)
	if fmt.Sprint(batch) != fmt.Sprint(alone) {
		t.Errorf("batch answers %v, walked alone %v", batch, alone)
	}
}

// FuzzFindKeyBatch checks that replaying walks never changes an answer:
// find_key over batches of two events in several orders answers each as a
// walk of it alone does.
func FuzzFindKeyBatch(f *testing.F) {
	f.Add(synthLike("comm", "sluicebench", 1000, 16523), synthLike("comm", "sh", 1001, 70000), "comm")
	f.Add(synthLike("comm", "sluicebench", 1000, 16523), synthLike("comm", "sluicebench", 1001, 16523), "flags")
	f.Add(synthLike("comm", "x", 1, 1), synthLike("cmd", "x", 1, 1), "comm")
	f.Fuzz(func(t *testing.T, a, b []byte, key string) {
		for _, events := range [][][]byte{{a, b}, {a, a, b, b, a}, {b, a, a, b}} {
			out := make([]byte, 8*len(events))
			if n := findKeyBatch(encodeBatchOf(events...), []byte(key), out); int(n) != len(events) {
				t.Fatalf("findKeyBatch = %d, want %d", n, len(events))
			}
			for i, ev := range events {
				s, e := findKeyIn(ev, []byte(key))
				if gs, ge := binary.LittleEndian.Uint32(out[8*i:]), binary.LittleEndian.Uint32(out[8*i+4:]); gs != s || ge != e {
					t.Fatalf("event %d of %d: batch answer %d, %d; walked alone %d, %d", i, len(events), gs, ge, s, e)
				}
			}
		}
	})
}
