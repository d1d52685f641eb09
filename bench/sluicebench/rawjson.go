package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/sources/decode"
)

// jsonLineWriter is the reference of `make bench`'s JSON-into-a-file runs:
// what a program written for the synthetic gadget alone does to put its
// records into a file as the JSON lines sluice writes (the same keys and
// values, so the same bytes per event), with nothing generic about it: no
// BTF, no event model, no queue, no stage. The reader renders each record
// straight from the ring's bytes with the field offsets written in, and a
// writer goroutine writes each 256 records (or what an idle ring left)
// with one write(2), as sluice's sinks write a batch, so that rendering
// and writing run on the two CPUs a loaded agent has.
type jsonLineWriter struct {
	size     int    // record bytes: 64 or 256
	gadget   string // synth64, synth256
	host     string
	bootWall int64 // wall clock minus CLOCK_BOOTTIME, ns: the gadget's timestamps are boot time
	seq      uint64
	lastTS   uint64 // the timestamp last rendered, and its text (a burst shares one)
	lastTime []byte
	buf      []byte
	n        int           // records in buf
	free     chan []byte   // buffers back from the writer
	full     chan jsonFull // buffers for the writer
	stopped  chan struct{} // closed when the writer has written its last buffer
	// With plan set (rawcodec), records are rendered by sluice's own
	// parts instead: decoded from BTF into the event model's msgpack by
	// the plan, as sluice's reader does, then transcoded to JSON by an
	// Encoder, as sluice's JSON sinks do.
	plan      *decode.Plan
	enc       codec.Encoder
	msg       []byte
	now       time.Time
	clockLeft int
}

type jsonFull struct {
	buf []byte
	n   int
}

// jsonBatch is how many records one write carries, as a sink's batch.
const jsonBatch = 256

func newJSONLineWriter(size int, f *os.File, written func(n int), done chan<- error) *jsonLineWriter {
	host, _ := os.Hostname()
	var boot unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	w := &jsonLineWriter{size: size, gadget: "synth" + strconv.Itoa(size), host: host,
		bootWall: time.Now().UnixNano() - boot.Nano(),
		free:     make(chan []byte, 2), full: make(chan jsonFull, 2), stopped: make(chan struct{})}
	w.free <- make([]byte, 0, 512*jsonBatch)
	w.free <- make([]byte, 0, 512*jsonBatch)
	w.buf = <-w.free
	go func() {
		defer close(w.stopped)
		var failed error
		for b := range w.full {
			if failed == nil {
				if _, failed = f.Write(b.buf); failed != nil {
					done <- failed // the reader goes on; its buffers come back unwritten
				} else {
					written(b.n)
				}
			}
			w.free <- b.buf[:0]
		}
	}()
	return w
}

// useCodec makes w render with sluice's decoder and encoder (rawcodec):
// the work sluice's event model asks for, in rawjson's layout of
// goroutines and writes.
func (w *jsonLineWriter) useCodec(event btf.Type) error {
	plan, err := decode.Compile(event, decode.Options{Gadget: w.gadget, Source: "synth", Host: w.host})
	if err != nil {
		return fmt.Errorf("compile the decoder of %s: %w", w.gadget, err)
	}
	w.plan, w.msg = plan, make([]byte, 0, plan.Room())
	return nil
}

// add renders one record.
func (w *jsonLineWriter) add(rec []byte) {
	if len(rec) < w.size {
		return
	}
	if w.plan != nil {
		w.addCodec(rec)
		return
	}
	ne := binary.NativeEndian
	ts := ne.Uint64(rec[0:])
	if ts != w.lastTS || w.lastTime == nil {
		w.lastTS = ts
		w.lastTime = time.Unix(0, int64(ts)+w.bootWall).UTC().AppendFormat(w.lastTime[:0], time.RFC3339Nano)
	}
	w.seq++
	b := w.buf
	b = append(b, `{"time":"`...)
	b = append(b, w.lastTime...)
	b = append(b, `","host":`...)
	b = appendJSONText(b, []byte(w.host))
	b = append(b, `,"source":"synth","gadget":"`...)
	b = append(b, w.gadget...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, w.seq, 10)
	b = append(b, `,"timestamp":"`...)
	b = append(b, w.lastTime...)
	b = append(b, `","timestamp_raw":`...)
	b = strconv.AppendUint(b, ts, 10)
	b = append(b, `,"kseq":`...)
	b = strconv.AppendUint(b, ne.Uint64(rec[8:]), 10)
	b = append(b, `,"pid":`...)
	b = strconv.AppendUint(b, uint64(ne.Uint32(rec[16:])), 10)
	b = append(b, `,"tid":`...)
	b = strconv.AppendUint(b, uint64(ne.Uint32(rec[20:])), 10)
	b = append(b, `,"comm":`...)
	b = appendJSONText(b, cstr(rec[24:40]))
	b = append(b, `,"burst":`...)
	b = strconv.AppendUint(b, uint64(ne.Uint32(rec[40:])), 10)
	b = append(b, `,"index":`...)
	b = strconv.AppendUint(b, uint64(ne.Uint32(rec[44:])), 10)
	if w.size == 64 {
		b = append(b, `,"value":`...)
		b = strconv.AppendUint(b, ne.Uint64(rec[48:]), 10)
		b = append(b, `,"flags":`...)
		b = strconv.AppendUint(b, ne.Uint64(rec[56:]), 10)
	} else {
		b = append(b, `,"path":`...)
		b = appendJSONText(b, cstr(rec[48:256]))
	}
	w.buf = append(b, "}\n"...)
	if w.n++; w.n >= jsonBatch {
		w.flush()
	}
}

// addCodec renders one record as sluice does: the clock read once per
// 64 records, as sluice's reader reads it.
func (w *jsonLineWriter) addCodec(rec []byte) {
	if w.clockLeft--; w.clockLeft < 0 {
		w.now, w.clockLeft = time.Now(), 63
	}
	w.seq++
	w.msg = w.plan.Append(w.msg[:0], rec, w.seq, w.now)
	b, err := w.enc.AppendJSON(w.buf, w.msg)
	if err != nil {
		return // not counted as written: the run's counters would show it
	}
	w.buf = append(b, '\n')
	if w.n++; w.n >= jsonBatch {
		w.flush()
	}
}

// flush hands what is rendered to the writer.
func (w *jsonLineWriter) flush() {
	if w.n == 0 {
		return
	}
	w.full <- jsonFull{w.buf, w.n}
	w.buf, w.n = <-w.free, 0
}

// close flushes, stops the writer and waits for its last write.
func (w *jsonLineWriter) close() {
	w.flush()
	close(w.full)
	<-w.stopped
}

func cstr(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// appendJSONText appends s as a JSON string: as it is when it needs no
// escape, which is every string the synthetic gadget writes.
func appendJSONText(b, s []byte) []byte {
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(string(s))
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
