package decode

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// synthEvent returns the event struct of the benchmark's synthetic gadget
// (bench/gadgets/synth.bpf.c) for records of size bytes, from its object,
// and a record as the gadget writes it.
func synthEvent(tb testing.TB, size int) (btf.Type, []byte) {
	tb.Helper()
	spec, err := btf.LoadSpec(filepath.Join("..", "..", "bench", "gadgets", "synth"+strconv.Itoa(size)+".bpf.o"))
	if err != nil {
		tb.Fatal(err)
	}
	var st *btf.Struct
	if err := spec.TypeByName("event", &st); err != nil {
		tb.Fatal(err)
	}
	rec := make([]byte, size)
	binary.NativeEndian.PutUint64(rec[0:], 123_456_789_000)
	binary.NativeEndian.PutUint64(rec[8:], 987654)
	binary.NativeEndian.PutUint32(rec[16:], 4242)
	binary.NativeEndian.PutUint32(rec[20:], 4243)
	copy(rec[24:], "sluicebench")
	binary.NativeEndian.PutUint32(rec[40:], 256)
	binary.NativeEndian.PutUint32(rec[44:], 17)
	if size == 64 {
		binary.NativeEndian.PutUint64(rec[48:], 987654*2654435761)
	} else {
		copy(rec[48:], "/var/lib/sluice/bench/synthetic/record/data.db")
	}
	return st, rec
}

// BenchmarkDecodeSynth decodes the records of `make bench`'s synthetic
// producer, the reader's per-record work besides reading.
func BenchmarkDecodeSynth(b *testing.B) {
	for _, size := range []int{64, 256} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			st, rec := synthEvent(b, size)
			p, err := Compile(st, testOpts)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 4096)
			now := time.Now()
			b.ReportAllocs()
			seq := uint64(1)
			for b.Loop() {
				seq++
				buf = p.Append(buf[:0], rec, seq, now)
			}
			b.ReportMetric(float64(len(buf)), "bytes/event")
		})
	}
}

// BenchmarkDecodeSynthRatio interleaves turns of the fast path (planned
// steps) and the general path on the synthetic records (and trace_exec's
// shape, which has names and a string list) and reports the best turn of
// each as ns/event and their ratio: on a shared, noisy machine ratios of
// interleaved turns hold where separate runs do not.
//
//	go test -run '^$' -bench DecodeSynthRatio -benchtime 20x ./sources/decode
func BenchmarkDecodeSynthRatio(b *testing.B) {
	type shape struct {
		name string
		typ  btf.Type
		rec  []byte
	}
	var shapes []shape
	for _, size := range []int{64, 256} {
		st, rec := synthEvent(b, size)
		shapes = append(shapes, shape{"synth" + strconv.Itoa(size), st, rec})
	}
	st, rec := execShaped()
	shapes = append(shapes, shape{"exec", st, append(rec, make([]byte, 1848-len(rec))...)})
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			fast, err := Compile(sh.typ, testOpts)
			if err != nil {
				b.Fatal(err)
			}
			general := *fast
			general.general = true
			plans := []*Plan{fast, &general}
			best := []time.Duration{math.MaxInt64, math.MaxInt64}
			buf := make([]byte, 0, 64<<10)
			now := time.Now()
			const turn = 20000
			for b.Loop() {
				for i, p := range plans {
					start := time.Now()
					for j := range turn {
						if cap(buf)-len(buf) < 4096 {
							buf = buf[:0]
						}
						buf = p.Append(buf, sh.rec, uint64(j), now)
					}
					best[i] = min(best[i], time.Since(start))
				}
			}
			ns := func(i int) float64 { return float64(best[i].Nanoseconds()) / turn }
			b.ReportMetric(ns(0), "fast-ns/event")
			b.ReportMetric(ns(1), "general-ns/event")
			b.ReportMetric(ns(0)/ns(1), "fast/general")
		})
	}
}

// BenchmarkSynthToJSON renders decoded synthetic records as JSON lines
// with the sinks' encoder, the records varying as the gadget's do (a
// sequence, a timestamp per burst of 256): the stdout and file sinks'
// per-event work, apart from the write.
//
//	go test -run '^$' -bench SynthToJSON ./sources/decode
func BenchmarkSynthToJSON(b *testing.B) {
	for _, size := range []int{64, 256} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			st, rec := synthEvent(b, size)
			p, err := Compile(st, testOpts)
			if err != nil {
				b.Fatal(err)
			}
			const n = 4096
			var arena []byte
			var events [][]byte
			now := time.Now()
			for i := range n {
				binary.NativeEndian.PutUint64(rec[0:], 123_456_789_000+uint64(i/256)*1_000_003)
				binary.NativeEndian.PutUint64(rec[8:], uint64(987654+i))
				binary.NativeEndian.PutUint32(rec[44:], uint32(i%256))
				if size == 64 {
					binary.NativeEndian.PutUint64(rec[48:], uint64(987654+i)*2654435761)
				}
				start := len(arena)
				arena = p.Append(arena, rec, uint64(1000+i), now)
				events = append(events, arena[start:])
			}
			var enc codec.Encoder
			out := make([]byte, 0, 256*600)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i%256 == 0 {
					out = out[:0]
				}
				var err error
				if out, err = enc.AppendJSON(out, events[i%n]); err != nil {
					b.Fatal(err)
				}
				out = append(out, '\n')
				i++
			}
		})
	}
}
