package sinks

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// synthBenchEvents are n events shaped like those of the synthetic 64-byte
// gadget make bench runs (bench/gadgets), about 300 bytes of JSON each.
func synthBenchEvents(n int) []pipeline.Event {
	batch := make([]pipeline.Event, n)
	for i := range batch {
		seq := uint64(i + 1)
		ev := codec.AppendMapHeader(nil, 15)
		ev = codec.AppendString(codec.AppendString(ev, "time"), "2026-12-03T15:53:10.010942098Z")
		ev = codec.AppendString(codec.AppendString(ev, "host"), "vm")
		ev = codec.AppendString(codec.AppendString(ev, "source"), "synth")
		ev = codec.AppendString(codec.AppendString(ev, "gadget"), "synth64")
		ev = codec.AppendUint(codec.AppendString(ev, "seq"), seq)
		ev = codec.AppendString(codec.AppendString(ev, "timestamp"), "2026-12-03T15:53:10.010942098Z")
		ev = codec.AppendUint(codec.AppendString(ev, "timestamp_raw"), 20827171934734+seq)
		ev = codec.AppendUint(codec.AppendString(ev, "kseq"), seq)
		ev = codec.AppendUint(codec.AppendString(ev, "pid"), 8472)
		ev = codec.AppendUint(codec.AppendString(ev, "tid"), 8475)
		ev = codec.AppendString(codec.AppendString(ev, "comm"), "sluicebench")
		ev = codec.AppendUint(codec.AppendString(ev, "burst"), 256)
		ev = codec.AppendUint(codec.AppendString(ev, "index"), seq%256)
		ev = codec.AppendUint(codec.AppendString(ev, "value"), seq*2654435761)
		ev = codec.AppendUint(codec.AppendString(ev, "flags"), 0)
		batch[i] = pipeline.Event{Data: ev, Source: "synth", Seq: seq}
	}
	return batch
}

// BenchmarkStdoutTable is BenchmarkStdoutSink with format = "table", the
// built-in config's console.
//
//	go test -run '^$' -bench 'StdoutTable' -benchmem ./sinks/
func BenchmarkStdoutTable(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "stdout"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s, err := NewStdout("bench", f, StdoutOptions{Format: "table"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	batch := synthBenchEvents(256)
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for events < b.N {
		n := min(len(batch), b.N-events)
		if err := s.Write(context.Background(), batch[:n]); err != nil {
			b.Fatal(err)
		}
		if events += n; events%(64<<10) < n {
			b.StopTimer()
			f.Truncate(0)
			f.Seek(0, 0)
			b.StartTimer()
		}
	}
	reportEvents(b, events)
}

// BenchmarkStdoutSink writes batches of 256 synthetic events as JSON
// lines into a regular file, as make bench runs the stdout sink, the
// file truncated every 64 MiB; it reports events/s.
//
//	go test -run '^$' -bench 'StdoutSink' -benchmem ./sinks/
func BenchmarkStdoutSink(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "stdout"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s, err := NewStdout("bench", f, StdoutOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	batch := synthBenchEvents(256)
	b.ReportAllocs()
	b.ResetTimer()
	events, written := 0, int64(0)
	for events < b.N {
		n := min(len(batch), b.N-events)
		if err := s.Write(context.Background(), batch[:n]); err != nil {
			b.Fatal(err)
		}
		events += n
		if written += int64(n) * 300; written > 64<<20 {
			b.StopTimer()
			f.Truncate(0)
			f.Seek(0, 0)
			written = 0
			b.StartTimer()
		}
	}
	reportEvents(b, events)
}

// BenchmarkFileSinkSynth is BenchmarkFileSink's JSON case (fsync at
// the default interval) with the synthetic events of BenchmarkStdoutSink.
//
//	go test -run '^$' -bench 'FileSinkSynth' -benchmem ./sinks/
func BenchmarkFileSinkSynth(b *testing.B) {
	s, err := NewFile("bench", FileOptions{Path: filepath.Join(b.TempDir(), "events.jsonl"), MaxSize: 64 << 20, KeepFiles: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	batch := synthBenchEvents(256)
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for events < b.N {
		n := min(len(batch), b.N-events)
		if err := s.Write(context.Background(), batch[:n]); err != nil {
			b.Fatal(err)
		}
		events += n
	}
	reportEvents(b, events)
}
