package sinks

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkFileSink writes batches of 256 events of about 200 bytes to a
// file in the test's temporary directory, per format and fsync policy, and
// reports events/s.
//
//	go test -run '^$' -bench 'FileSink' -benchmem ./sinks/
func BenchmarkFileSink(b *testing.B) {
	for _, format := range []string{"json", "msgpack"} {
		for _, fsync := range []string{"never", "interval", "batch"} {
			b.Run(format+"/fsync="+fsync, func(b *testing.B) {
				s, err := NewFile("bench", FileOptions{Path: filepath.Join(b.TempDir(), "events.log"), Format: format, Fsync: fsync, MaxSize: 256 << 20})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close(context.Background())
				batch := benchEvents(256)
				b.SetBytes(int64(len(batch[0].Data)))
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
			})
		}
	}
}
