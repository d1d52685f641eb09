package codec

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// eventTime is the time of event seq: the same second, other nanoseconds.
func eventTime(seq uint64) string {
	return fmt.Sprintf("2026-12-03T15:53:10.%09dZ", 10942098+seq*977)
}

// synthEvent is an event of the synthetic 64-byte gadget (make bench) as the
// decoder emits it.
func synthEvent() []byte { return synthEventSeq(1234567) }

// synthEventSeq is the synthetic event seq: time, sequence numbers and
// value vary with it, the rest does not.
func synthEventSeq(seq uint64) []byte {
	ev := AppendMapHeader(nil, 15)
	ev = AppendString(AppendString(ev, "time"), eventTime(seq))
	ev = AppendString(AppendString(ev, "host"), "vm")
	ev = AppendString(AppendString(ev, "source"), "synth")
	ev = AppendString(AppendString(ev, "gadget"), "synth64")
	ev = AppendUint(AppendString(ev, "seq"), seq)
	ev = AppendString(AppendString(ev, "timestamp"), eventTime(seq))
	ev = AppendUint(AppendString(ev, "timestamp_raw"), 20827171934734+seq*977)
	ev = AppendUint(AppendString(ev, "kseq"), seq)
	ev = AppendUint(AppendString(ev, "pid"), 8472)
	ev = AppendUint(AppendString(ev, "tid"), 8475)
	ev = AppendString(AppendString(ev, "comm"), "sluicebench")
	ev = AppendUint(AppendString(ev, "burst"), 256)
	ev = AppendUint(AppendString(ev, "index"), seq%256)
	ev = AppendUint(AppendString(ev, "value"), seq*2654435761)
	ev = AppendUint(AppendString(ev, "flags"), 0)
	return ev
}

// traceOpenEvent is an event of the built-in trace_open gadget.
func traceOpenEvent() []byte { return traceOpenEventSeq(1234567) }

// traceOpenEventSeq is trace_open event seq: time and sequence number
// vary with it, and every fourth event is another process's open.
func traceOpenEventSeq(seq uint64) []byte {
	pid, comm, path, ret := uint64(14047), "sluicebench", "/proc/14047/stat", int64(5)
	if seq%4 == 0 {
		pid, comm, path, ret = 812, "systemd-journal", "/var/log/journal/4f1c/system.journal", -2
	}
	ev := AppendMapHeader(nil, 19)
	ev = AppendString(AppendString(ev, "time"), eventTime(seq))
	ev = AppendString(AppendString(ev, "host"), "vm")
	ev = AppendString(AppendString(ev, "source"), "open")
	ev = AppendString(AppendString(ev, "gadget"), "trace_open")
	ev = AppendUint(AppendString(ev, "seq"), seq)
	ev = AppendString(AppendString(ev, "timestamp"), eventTime(seq))
	ev = AppendUint(AppendString(ev, "timestamp_raw"), 20930452486257+seq*977)
	ev = AppendUint(AppendString(ev, "mntns_id"), 4026531832)
	ev = AppendUint(AppendString(ev, "pid"), pid)
	ev = AppendUint(AppendString(ev, "uid"), 0)
	ev = AppendString(AppendString(ev, "user"), "root")
	ev = AppendString(AppendString(ev, "comm"), comm)
	ev = AppendString(AppendString(ev, "path"), path)
	ev = AppendString(AppendString(ev, "flags"), "O_RDONLY|O_CLOEXEC")
	ev = AppendUint(AppendString(ev, "flags_raw"), 524288)
	ev = AppendString(AppendString(ev, "mode"), "----------")
	ev = AppendUint(AppendString(ev, "mode_raw"), 0)
	ev = AppendInt(AppendString(ev, "ret"), ret)
	ev = AppendString(AppendString(ev, "ret_error"), "")
	return ev
}

// execEvent is an exec event with an argument list.
func execEvent() []byte {
	ev := AppendMapHeader(nil, 15)
	for _, kv := range [][2]string{{"time", "2026-11-22T10:00:00.123456789Z"}, {"host", "node-a"}, {"source", "exec"}, {"gadget", "trace_exec"}, {"comm", "bash"}, {"filename", "/usr/bin/curl"}, {"uid_name", "root"}, {"ret_error", ""}} {
		ev = AppendString(AppendString(ev, kv[0]), kv[1])
	}
	for _, k := range []string{"seq", "pid", "ppid", "uid", "gid", "ret"} {
		ev = AppendInt(AppendString(ev, k), 4242)
	}
	ev = AppendArrayHeader(AppendString(ev, "args"), 5)
	for _, a := range []string{"curl", "-sS", "--max-time", "10", "https://example.com/"} {
		ev = AppendString(ev, a)
	}
	return ev
}

// testEncoder is the Encoder checkSameAsReference uses: one for all the
// inputs of a test, so that its cache holds the keys of the inputs before.
var testEncoder Encoder

// checkSameAsReference holds AppendJSON and an Encoder to the reference
// transcoder: the same bytes for what both accept, the same error for what
// both reject. b is tried as given (bytes after it in its array, which the
// fast paths' word loads may read) and copied to an array of its exact
// size.
func checkSameAsReference(t *testing.T, b []byte) {
	t.Helper()
	want, wantErr := AppendJSONRef([]byte("prefix"), b)
	for _, in := range [][]byte{b, bytes.Clone(b)[:len(b):len(b)]} {
		for _, enc := range []func(dst, src []byte) ([]byte, error){AppendJSON, testEncoder.AppendJSON} {
			got, err := enc([]byte("prefix"), in)
			if err != wantErr {
				t.Fatalf("%x: error %v, the reference's %v", b, err, wantErr)
			}
			if err == nil && !bytes.Equal(got, want) {
				t.Fatalf("%x:\ngot  %q\nwant %q", b, got, want)
			}
		}
	}
}

// TestEncoderStreams sends events of several shapes through one Encoder,
// one source after another and interleaved, and events whose keys change
// in place (same length, other bytes; other length; a key needing
// escapes), as a sink sees them.
func TestEncoderStreams(t *testing.T) {
	events := [][]byte{synthEvent(), traceOpenEvent(), execEvent()}
	for range 3 {
		for _, ev := range events {
			checkSameAsReference(t, ev)
			checkSameAsReference(t, ev)
		}
	}
	for i := range 30 {
		checkSameAsReference(t, events[i%3])
	}
	// Streams whose values change from event to event, alone and
	// interleaved, with an entry that changes only past its 32nd byte.
	for seq := range uint64(40) {
		checkSameAsReference(t, synthEventSeq(seq))
	}
	for seq := range uint64(40) {
		checkSameAsReference(t, traceOpenEventSeq(seq))
		checkSameAsReference(t, synthEventSeq(seq))
	}
	for _, tail := range []string{"a", "b", "b", "a"} {
		ev := AppendMapHeader(nil, 2)
		ev = AppendString(AppendString(ev, "k"), strings.Repeat("x", 31)+tail)
		ev = AppendString(AppendString(ev, "l"), "end of the event, so that 32 bytes follow the entry")
		checkSameAsReference(t, ev)
	}
	for _, key := range []string{"comm", "comx", "cOmm", "co", "comm_longer_than_16", "co\"m", "c\u00e9", "comm"} {
		ev := AppendMapHeader(nil, 3)
		ev = AppendString(AppendString(ev, "time"), "t")
		ev = AppendString(AppendString(ev, key), "bash")
		ev = AppendUint(AppendString(ev, "seq"), 1)
		checkSameAsReference(t, ev)
	}
	// A fresh Encoder meeting keys it does not cache (longer than 16
	// bytes, not strings) before ones it does.
	testEncoder = Encoder{}
	odd := AppendMapHeader(nil, 4)
	odd = AppendUint(AppendString(odd, "a key longer than sixteen bytes"), 1)
	odd = AppendUint(AppendInt(odd, -7), 2)
	odd = AppendUint(AppendString(odd, "pid"), 3)
	odd = AppendString(AppendString(odd, "comm"), "a value to load words from")
	checkSameAsReference(t, odd)
	checkSameAsReference(t, odd)
	// More keys than the cache holds.
	big := AppendMapHeader(nil, maxCachedKeys+10)
	for i := range maxCachedKeys + 10 {
		big = AppendUint(AppendString(big, fmt.Sprintf("k%d", i)), uint64(i))
	}
	checkSameAsReference(t, big)
	checkSameAsReference(t, big)
}

func TestAppendJSONMatchesReference(t *testing.T) {
	for _, ev := range [][]byte{synthEvent(), traceOpenEvent(), execEvent()} {
		checkSameAsReference(t, ev)
		for cut := range len(ev) {
			checkSameAsReference(t, ev[:cut])
		}
	}
	for _, v := range oracleValues {
		b, _ := msgpack.Marshal(v)
		checkSameAsReference(t, b)
	}
	// Every integer encoding at its edges, alone and as a map value.
	ints := []int64{0, 1, 9, 10, 99, 100, 127, 128, 255, 256, 999, 1000, 65535, 65536, 99999999, 100000000,
		math.MaxUint32, math.MaxUint32 + 1, 1e15, 1e16 - 1, 1e16, math.MaxInt64,
		-1, -9, -10, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, -1e16, math.MinInt64}
	for _, v := range ints {
		checkSameAsReference(t, AppendInt(nil, v))
		checkSameAsReference(t, AppendInt(AppendString(AppendMapHeader(nil, 1), "k"), v))
		// The encodings AppendInt does not choose for v.
		checkSameAsReference(t, binaryInt(0xd3, uint64(v)))
		if v >= 0 {
			checkSameAsReference(t, binaryInt(0xcf, uint64(v)))
		}
	}
	for _, u := range []uint64{math.MaxInt64 + 1, math.MaxUint64, 1e19, 1e19 - 1} {
		checkSameAsReference(t, AppendUint(nil, u))
		checkSameAsReference(t, AppendUint(AppendString(AppendMapHeader(nil, 1), "k"), u))
	}
	// Strings of every length up to 40 with a byte needing escaping at
	// every position, as keys and as values.
	for n := range 41 {
		for pos := -1; pos < n; pos++ {
			for _, c := range []byte{'"', '\\', '\n', 0x01, 0x1f, 0x7f, 0x80, 0xe2, 0xff} {
				s := bytes.Repeat([]byte{'a'}, n)
				if pos >= 0 {
					s[pos] = c
				}
				checkSameAsReference(t, AppendStringBytes(nil, s))
				m := AppendStringBytes(AppendMapHeader(nil, 1), s)
				checkSameAsReference(t, AppendStringBytes(m, s))
			}
		}
	}
}

// binaryInt is the 9-byte integer encoding typ (0xcf, 0xd3) of v.
func binaryInt(typ byte, v uint64) []byte {
	b := []byte{typ}
	for i := 7; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func TestAppendJSONMatchesReferenceRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		b := randomValue(r, nil, 0)
		checkSameAsReference(t, b)
		checkSameAsReference(t, b[:r.IntN(len(b)+1)])
	}
}

// randomValue appends a random msgpack value, shaped like events: maps of
// short string keys, strings mostly clean, integers of every size.
func randomValue(r *rand.Rand, b []byte, depth int) []byte {
	k := r.IntN(20)
	if depth == 0 {
		k = 0
	}
	switch {
	case k == 0 && depth < 3:
		n := r.IntN(20)
		b = AppendMapHeader(b, n)
		for range n {
			if r.IntN(30) == 0 {
				b = AppendInt(b, r.Int64N(1000)-500) // a non-string key
			} else {
				b = AppendStringBytes(b, randomString(r, 24))
			}
			b = randomValue(r, b, depth+1)
		}
		return b
	case k == 1 && depth < 3:
		n := r.IntN(6)
		b = AppendArrayHeader(b, n)
		for range n {
			b = randomValue(r, b, depth+1)
		}
		return b
	case k < 8:
		return AppendStringBytes(b, randomString(r, []int{8, 40, 300}[r.IntN(3)]))
	case k < 11:
		return AppendUint(b, r.Uint64()>>r.IntN(64))
	case k < 13:
		return AppendInt(b, -int64(r.Uint64()>>(1+r.IntN(63))))
	case k == 13:
		return AppendFloat64(b, r.NormFloat64()*math.Pow(10, float64(r.IntN(50)-25)))
	case k == 14:
		return append(b, 0xca, byte(r.IntN(256)), byte(r.IntN(256)), 0, 0)
	case k == 15:
		return AppendBytes(b, randomString(r, 10))
	case k == 16:
		return append(b, 0xd5, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)))
	case k == 17:
		return AppendBool(b, r.IntN(2) == 0)
	case k == 18:
		return AppendNil(b)
	}
	return append(b, byte(r.IntN(256))) // any byte: a fixint, a header cut short, 0xc1
}

// randomString is mostly letters, with now and then a byte JSON escapes,
// a multi-byte character, U+2028 or invalid UTF-8.
func randomString(r *rand.Rand, max int) []byte {
	n := r.IntN(max + 1)
	s := make([]byte, 0, n)
	dirty := r.IntN(4) == 0
	for len(s) < n {
		if dirty && r.IntN(8) == 0 {
			switch r.IntN(6) {
			case 0:
				s = append(s, byte(r.IntN(0x20)))
			case 1:
				s = append(s, '"', '\\')
			case 2:
				s = append(s, "é☃"...)
			case 3:
				s = append(s, "\u2028\u2029"...)
			case 4:
				s = append(s, 0xff, 0xc3)
			default:
				s = append(s, 0x7f)
			}
			continue
		}
		s = append(s, byte('a'+r.IntN(26)))
	}
	return s
}

func FuzzAppendJSONMatchesReference(f *testing.F) {
	f.Add(synthEvent())
	f.Add(traceOpenEvent())
	f.Add(execEvent())
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSameAsReference(t, b)
	})
}

// benchStream is the stream of events a benchmark transcodes: 64 events
// of the synthetic or trace_open gadget whose times and sequence numbers
// vary (the encoder cannot copy those from the event before), else ev.
func benchStream(name string, ev []byte) [][]byte {
	var out [][]byte
	for seq := range uint64(64) {
		switch name {
		case "synth64":
			out = append(out, synthEventSeq(1234567+seq))
		case "trace_open":
			out = append(out, traceOpenEventSeq(1234567+seq))
		default:
			return [][]byte{ev}
		}
	}
	return out
}

// BenchmarkAppendJSONEvent transcodes events of the gadgets make bench
// runs; the figure to watch is ns/op (one event) and 0 allocs/op.
//
//	go test -run '^$' -bench AppendJSONEvent -benchmem ./pipeline/codec
func BenchmarkAppendJSONEvent(b *testing.B) {
	for _, c := range []struct {
		name string
		ev   []byte
	}{{"synth64", synthEvent()}, {"trace_open", traceOpenEvent()}, {"trace_exec", execEvent()}} {
		b.Run(c.name, func(b *testing.B) {
			evs := benchStream(c.name, c.ev)
			for _, impl := range []struct {
				name string
				fn   func(dst, src []byte) ([]byte, error)
			}{{"encoder", new(Encoder).AppendJSON}, {"fast", AppendJSON}, {"reference", AppendJSONRef}} {
				b.Run(impl.name, func(b *testing.B) {
					buf := make([]byte, 0, 1024)
					b.ReportAllocs()
					b.SetBytes(int64(len(c.ev)))
					i := 0
					for b.Loop() {
						buf, _ = impl.fn(buf[:0], evs[i%len(evs)])
						i++
					}
				})
			}
		})
	}
}

// BenchmarkAppendJSONEventRatio times the encoder, AppendJSON, the
// reference and the encoder without its template (entries) on the same
// events in turns, 20,000 events each, and reports the best turn of each
// as ns/event and the encoder's ratios to the reference and to entries: on
// a shared, noisy machine ratios of interleaved turns hold where separate
// runs do not.
//
//	go test -run '^$' -bench AppendJSONEventRatio -benchtime 20x ./pipeline/codec
func BenchmarkAppendJSONEventRatio(b *testing.B) {
	for _, c := range []struct {
		name string
		ev   []byte
	}{{"synth64", synthEvent()}, {"trace_open", traceOpenEvent()}, {"trace_exec", execEvent()}} {
		b.Run(c.name, func(b *testing.B) {
			evs := benchStream(c.name, c.ev)
			// The encoder, AppendJSON, the reference, and the encoder
			// without its template (entry by entry, its cache only).
			entries := &Encoder{tpl: template{off: math.MaxInt}}
			impls := []func(dst, src []byte) ([]byte, error){new(Encoder).AppendJSON, AppendJSON, AppendJSONRef, entries.AppendJSON}
			best := []time.Duration{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64}
			buf := make([]byte, 0, 1024)
			const turn = 20000
			for b.Loop() {
				for i, fn := range impls {
					start := time.Now()
					for j := range turn {
						buf, _ = fn(buf[:0], evs[j%len(evs)])
					}
					best[i] = min(best[i], time.Since(start))
				}
			}
			ns := func(i int) float64 { return float64(best[i].Nanoseconds()) / turn }
			b.ReportMetric(ns(0), "encoder-ns/event")
			b.ReportMetric(ns(1), "appendjson-ns/event")
			b.ReportMetric(ns(2), "reference-ns/event")
			b.ReportMetric(ns(3), "entries-ns/event")
			b.ReportMetric(ns(0)/ns(2), "encoder/reference")
			b.ReportMetric(ns(0)/ns(3), "encoder/entries")
		})
	}
}
