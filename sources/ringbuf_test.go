package sources

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/sluice-dev/sluice/internal/synth"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// loadSynth loads the benchmark's synthetic gadget (records of size
// bytes, a ring of ring bytes) for this process's calls only, attached.
func loadSynth(tb testing.TB, size, ring int) *ebpf.Map {
	tb.Helper()
	testutil.RequireBPF(tb)
	root, err := synth.FindRoot()
	if err != nil {
		tb.Fatal(err)
	}
	spec, err := ebpf.LoadCollectionSpec(filepath.Join(root, synth.Object(size)))
	if err != nil {
		tb.Fatal(err)
	}
	spec.Maps["events"].MaxEntries = uint32(ring)
	if err := spec.Variables["target_tgid"].Set(uint32(os.Getpid())); err != nil {
		tb.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(coll.Close)
	tp, err := link.Tracepoint("syscalls", "sys_enter_getpgid", coll.Programs["synth_burst"], nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tp.Close() })
	return coll.Maps["events"]
}

// kseq is the synthetic record's number.
func kseq(rec []byte) uint64 { return binary.NativeEndian.Uint64(rec[8:]) }

// TestRingBufferReadsInOrderAcrossWraps writes bursts into a small ring
// and reads them in chunks smaller than a burst, so that chunks end in the
// middle of the records and runs wrap round the ring's end: every record
// comes out once, whole, in order, and a read of the empty ring ends at
// its deadline.
func TestRingBufferReadsInOrderAcrossWraps(t *testing.T) {
	for _, size := range synth.Sizes {
		t.Run(filepath.Base(synth.Object(size)), func(t *testing.T) {
			const ring = 64 << 10
			m := loadSynth(t, size, ring)
			r, err := newRingBuffer(m.FD(), ring)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.chunk = 3000 // not a multiple of a record
			var next uint64
			for round := range 40 {
				burst := 50 + round*3 // at most 167 records (the ring holds 248 of 256 bytes); the ring wraps many times
				synth.Burst(burst)
				r.SetDeadline(time.Now().Add(-time.Second))
				got := 0
				for {
					rec, lost, err := r.Read()
					if errors.Is(err, os.ErrDeadlineExceeded) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					if lost != 0 || len(rec) != size {
						t.Fatalf("round %d: a record of %d bytes, %d lost; want %d bytes", round, len(rec), lost, size)
					}
					if next == 0 {
						next = kseq(rec)
					}
					if kseq(rec) != next {
						t.Fatalf("round %d: record %d after %d", round, kseq(rec), next-1)
					}
					next++
					got++
				}
				if got != burst {
					t.Fatalf("round %d: read %d records of a burst of %d", round, got, burst)
				}
			}
		})
	}
}

// TestRingBufferWaitEnds: a read of an empty ring returns at its
// deadline, and Close ends a read waiting without one, in either way of
// waiting (the netpoller, or epoll_wait once the reader is busy).
func TestRingBufferWaitEnds(t *testing.T) {
	m := loadSynth(t, 64, 64<<10)
	for _, busy := range []bool{false, true} {
		t.Run(map[bool]string{false: "netpoller", true: "epoll_wait"}[busy], func(t *testing.T) {
			testRingBufferWaitEnds(t, m, busy)
		})
	}
}

func testRingBufferWaitEnds(t *testing.T, m *ebpf.Map, busy bool) {
	r, err := newRingBuffer(m.FD(), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	r.busy = busy
	r.SetDeadline(time.Now().Add(20 * time.Millisecond))
	if _, _, err := r.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read of an empty ring: %v, want a deadline error", err)
	}
	// A record in the ring is read without waiting for the deadline.
	synth.Burst(1)
	r.SetDeadline(time.Now().Add(time.Hour))
	start := time.Now()
	if rec, _, err := r.Read(); err != nil || len(rec) != 64 {
		t.Fatalf("read of a record: %d bytes, %v", len(rec), err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("read of a record in the ring took %v", d)
	}
	r.busy = busy // a small chunk makes the reader idle
	r.SetDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, _, err := r.Read()
		done <- err
	}()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read ended by Close: %v, want os.ErrClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := r.Read(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
}

// TestRingBufferWakeupEndsWait: a read waiting with no deadline near
// returns the records once the gadget wakes the reader (a burst past the
// gadget header's 64 KiB of unread data), through the netpoller.
func TestRingBufferWakeupEndsWait(t *testing.T) {
	const ring = 256 << 10
	m := loadSynth(t, 64, ring)
	r, err := newRingBuffer(m.FD(), ring)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const deadline = time.Minute
	r.SetDeadline(time.Now().Add(deadline))
	type result struct {
		rec []byte
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		rec, _, err := r.Read()
		done <- result{append([]byte(nil), rec...), err}
	}()
	// 1,000 records of 72 bytes with their headers: past 64 KiB, so the
	// last ones are submitted with a wakeup. Read usually waits by now;
	// if not, it finds them without one.
	synth.Burst(1000)
	res := <-done
	if res.err != nil || len(res.rec) != 64 {
		t.Fatalf("read: %d bytes, %v", len(res.rec), res.err)
	}
	if d := time.Since(start); d >= deadline {
		t.Fatalf("read returned after %v, at its deadline: the wakeup did not end the wait", d)
	}
}

// BenchmarkRingBufferRead compares the reader's cost per record with
// cilium/ebpf's ReadInto, on the same ring and records (bursts of the
// synthetic gadget, written before each timed read).
//
//	go test -run '^$' -bench RingBufferRead -benchtime 200x ./sources
func BenchmarkRingBufferRead(b *testing.B) {
	const ring = 1 << 20
	for _, size := range synth.Sizes {
		m := loadSynth(b, size, ring)
		records := ring / (size + 8) * 9 / 10 // what the ring holds
		fill := func() {
			for n := records; n > 0; n -= synth.MaxBurst {
				synth.Burst(min(n, synth.MaxBurst))
			}
		}
		b.Run(filepath.Base(synth.Object(size))+"/chunked", func(b *testing.B) {
			r, err := newRingBuffer(m.FD(), ring)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			r.SetDeadline(time.Now().Add(-time.Second))
			for b.Loop() {
				b.StopTimer()
				fill()
				b.StartTimer()
				for range records {
					if _, _, err := r.Read(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
		})
		b.Run(filepath.Base(synth.Object(size))+"/cilium", func(b *testing.B) {
			r, err := ringbuf.NewReader(m)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			r.SetDeadline(time.Now().Add(-time.Second))
			var rec ringbuf.Record
			for b.Loop() {
				b.StopTimer()
				fill()
				b.StartTimer()
				for range records {
					if err := r.ReadInto(&rec); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
		})
	}
}
