package sinks

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/pipeline"
)

// The benchmarks publish events of about 200 bytes, the size the issue's
// reference figures use, to an in-process server, and report events/s.
// Compare figures of one run only: the server shares the machine's cores.
//
//	go test -run '^$' -bench 'NATS|JetStream' -benchmem ./sinks/

// benchEvents makes n events of about 200 bytes.
func benchEvents(n int) []pipeline.Event {
	batch := make([]pipeline.Event, n)
	for i := range batch {
		batch[i] = seqEvent("exec", uint64(i+1), strings.Repeat("c", 120))
	}
	return batch
}

func reportEvents(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// writeBatchSize is the batch the pipeline would hand the sink.
func writeBatchSize(s *NATS) int {
	if n, _ := s.WriteBatch(); n > 0 {
		return n
	}
	return pipeline.DefaultBatchSize
}

// newBenchSink starts a server (with JetStream when opts asks for it) and
// a sink publishing to it on bench.{source}.
func newBenchSink(b *testing.B, opts NATSOptions) *NATS {
	srv := startServer(b, &server.Options{JetStream: opts.JetStream != nil})
	opts.URL, opts.Subject, opts.Host, opts.BootID = srv.ClientURL(), "bench.{source}", "h", "b"
	s, err := NewNATS(context.Background(), "bench", opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// bareConn is a plain nats.go connection, for the reference loops.
func bareConn(b *testing.B, url string) *nats.Conn {
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return nc
}

// bareStream starts a JetStream server with a stream BENCH on bench.> and
// returns a plain client of it; opts are the client's.
func bareStream(b *testing.B, opts ...jetstream.JetStreamOpt) jetstream.JetStream {
	js, err := jetstream.New(bareConn(b, startServer(b, &server.Options{JetStream: true}).ClientURL()), opts...)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Duplicates: DefaultDuplicateWindow}); err != nil {
		b.Fatal(err)
	}
	return js
}

// sinkMsg is the message the sink publishes for data (id: its dedup id, or
// "" for core NATS), built by the sink's own code.
func sinkMsg(data []byte, id string) *nats.Msg {
	return newOutMsg("bench.exec", contentMsgpack, id, data).natsMsg("")
}

// benchSink writes b.N events through s in batches of the size the sink
// asks the pipeline for, with fresh sequence numbers (so that the stream's
// deduplication does not skip work).
func benchSink(b *testing.B, s *NATS) {
	batch := benchEvents(writeBatchSize(s))
	b.SetBytes(int64(len(batch[0].Data)))
	b.ReportAllocs()
	b.ResetTimer()
	seq, events := uint64(0), 0
	for events < b.N {
		n := min(len(batch), b.N-events)
		for j := range n {
			seq++
			batch[j].Seq = seq
		}
		if err := s.Write(context.Background(), batch[:n]); err != nil {
			b.Fatal(err)
		}
		events += n
	}
	if s.js == nil {
		s.nc.Flush()
	}
	reportEvents(b, events)
}

func BenchmarkNATSCoreSink(b *testing.B) {
	benchSink(b, newBenchSink(b, NATSOptions{}))
}

// BenchmarkNATSBarePublishMsg is the reference for BenchmarkNATSCoreSink:
// nats.go publishing the sink's exact message (payload and headers) in a
// loop, with nothing of sluice around it.
func BenchmarkNATSBarePublishMsg(b *testing.B) {
	nc := bareConn(b, startServer(b, nil).ClientURL())
	m := sinkMsg(benchEvents(1)[0].Data, "")
	b.ReportAllocs()
	b.SetBytes(int64(len(m.Data)))
	for b.Loop() {
		nc.PublishMsg(m)
	}
	nc.Flush()
	reportEvents(b, b.N)
}

// BenchmarkNATSBarePublish publishes the payload without headers: what the
// two headers cost nats.go and the server.
func BenchmarkNATSBarePublish(b *testing.B) {
	nc := bareConn(b, startServer(b, nil).ClientURL())
	data := benchEvents(1)[0].Data
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		nc.Publish("bench.exec", data)
	}
	nc.Flush()
	reportEvents(b, b.N)
}

// BenchmarkNATSCoreSinkVsBare interleaves batches of the sink and of the
// bare loop (the same message) on one connection each to one server and
// reports their throughput ratio, which the machine's noise affects less
// than two separate benchmarks.
func BenchmarkNATSCoreSinkVsBare(b *testing.B) {
	s := newBenchSink(b, NATSOptions{})
	nc := bareConn(b, s.opts.URL) // the sink's server
	batch := benchEvents(pipeline.DefaultBatchSize)
	m := sinkMsg(batch[0].Data, "")
	var sinkTime, bareTime time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for events := 0; events < b.N; events += len(batch) {
		t0 := time.Now()
		s.Write(context.Background(), batch)
		s.nc.Flush()
		t1 := time.Now()
		for range batch {
			nc.PublishMsg(m)
		}
		nc.Flush()
		sinkTime += t1.Sub(t0)
		bareTime += time.Since(t1)
	}
	b.ReportMetric(bareTime.Seconds()/sinkTime.Seconds(), "sink/bare")
}

// BenchmarkJetStreamBareAsync is nats.go's own async publishing of the
// sink's messages (headers and dedup ids included) with the same window of
// outstanding acknowledgements, awaited at the end: the ceiling for
// BenchmarkJetStreamSinkAsync.
func BenchmarkJetStreamBareAsync(b *testing.B) {
	js := bareStream(b, jetstream.WithPublishAsyncMaxPending(DefaultMaxPending))
	data := benchEvents(1)[0].Data
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		m := sinkMsg(data, "h.b.r.exec."+strconv.Itoa(i))
		for {
			_, err := js.PublishMsgAsync(m)
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				b.Fatal(err)
			}
			<-js.PublishAsyncComplete() // the window stayed full for 200ms: let it drain
		}
	}
	<-js.PublishAsyncComplete()
	reportEvents(b, b.N)
}

func BenchmarkJetStreamSinkAsync(b *testing.B) {
	benchSink(b, newBenchSink(b, NATSOptions{JetStream: &JetStreamOptions{Stream: "BENCH", Create: true}}))
}

// BenchmarkJetStreamSyncPublish is the reference: publish, wait for the
// ack, repeat.
func BenchmarkJetStreamSyncPublish(b *testing.B) {
	js := bareStream(b)
	ctx := context.Background()
	data := benchEvents(1)[0].Data
	b.ReportAllocs()
	for b.Loop() {
		if _, err := js.Publish(ctx, "bench.exec", data); err != nil {
			b.Fatal(err)
		}
	}
	reportEvents(b, b.N)
}

// BenchmarkJetStreamSyncPublishMsg is BenchmarkJetStreamSyncPublish with
// the sink's messages (format headers and a dedup id).
func BenchmarkJetStreamSyncPublishMsg(b *testing.B) {
	js := bareStream(b)
	ctx := context.Background()
	data := benchEvents(1)[0].Data
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		m := sinkMsg(data, "h.b.r.exec."+strconv.Itoa(i))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	reportEvents(b, b.N)
}

// BenchmarkJetStreamSinkBatched is BenchmarkJetStreamSinkAsync with 100
// events per message; compare events/s with it.
func BenchmarkJetStreamSinkBatched(b *testing.B) {
	benchSink(b, newBenchSink(b, NATSOptions{BatchMaxEvents: 100, JetStream: &JetStreamOptions{Stream: "BENCH", Create: true}}))
}

// BenchmarkJetStreamSinkVsBareAsync interleaves Writes of the sink (one
// event per message) with the same number of the sink's messages
// published by nats.go's PublishMsgAsync on a connection of its own to the
// same stream, each awaited in full as a Write is, and reports their
// throughput ratio (above 1: the sink is faster), which the machine's
// noise affects less than two separate benchmarks.
func BenchmarkJetStreamSinkVsBareAsync(b *testing.B) {
	s := newBenchSink(b, NATSOptions{JetStream: &JetStreamOptions{Stream: "BENCH", Create: true}})
	js, err := jetstream.New(bareConn(b, s.opts.URL), jetstream.WithPublishAsyncMaxPending(DefaultMaxPending))
	if err != nil {
		b.Fatal(err)
	}
	batch := benchEvents(writeBatchSize(s))
	msgs := make([]*nats.Msg, len(batch))
	seq := uint64(0)
	var sinkTime, bareTime time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for events := 0; events < b.N; events += len(batch) {
		for i := range batch {
			seq++
			batch[i].Seq = seq
		}
		t0 := time.Now()
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		for i := range msgs {
			seq++
			msgs[i] = sinkMsg(batch[i].Data, "h.b.r.exec."+strconv.FormatUint(seq, 10))
		}
		t2 := time.Now()
		for _, m := range msgs {
			if _, err := js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
		sinkTime += t1.Sub(t0)
		bareTime += time.Since(t2)
	}
	b.ReportMetric(bareTime.Seconds()/sinkTime.Seconds(), "sink/bare")
}
