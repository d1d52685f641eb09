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
	srv := startServer(b, nil)
	s, err := NewNATS(context.Background(), "bench", NATSOptions{URL: srv.ClientURL(), Subject: "bench.{source}", Host: "h"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	benchSink(b, s)
}

// BenchmarkNATSBarePublishMsg is the reference for BenchmarkNATSCoreSink:
// nats.go publishing the sink's exact message (payload and headers) in a
// loop, with nothing of sluice around it.
func BenchmarkNATSBarePublishMsg(b *testing.B) {
	srv := startServer(b, nil)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	m := &nats.Msg{Subject: "bench.exec", Data: benchEvents(1)[0].Data, Header: nats.Header{headerFormat: {FormatVersion}, headerContentType: {contentMsgpack}}}
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
	srv := startServer(b, nil)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
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
	srv := startServer(b, nil)
	s, err := NewNATS(context.Background(), "bench", NATSOptions{URL: srv.ClientURL(), Subject: "bench.{source}", Host: "h"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	batch := benchEvents(pipeline.DefaultBatchSize)
	m := &nats.Msg{Subject: "bench.exec", Data: batch[0].Data, Header: nats.Header{headerFormat: {FormatVersion}, headerContentType: {contentMsgpack}}}
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
	srv := startServer(b, &server.Options{JetStream: true})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(DefaultMaxPending))
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Duplicates: DefaultDuplicateWindow}); err != nil {
		b.Fatal(err)
	}
	data := benchEvents(1)[0].Data
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		m := &nats.Msg{Subject: "bench.exec", Data: data, Header: nats.Header{headerFormat: {FormatVersion}, headerContentType: {contentMsgpack}, jetstream.MsgIDHeader: {"h.b.r.exec." + strconv.Itoa(i)}}}
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
	srv := startServer(b, &server.Options{JetStream: true})
	s, err := NewNATS(context.Background(), "bench", NATSOptions{URL: srv.ClientURL(), Subject: "bench.{source}", Host: "h", BootID: "b",
		JetStream: &JetStreamOptions{Stream: "BENCH", Create: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	benchSink(b, s)
}

// BenchmarkJetStreamSyncPublish is the reference: publish, wait for the
// ack, repeat.
func BenchmarkJetStreamSyncPublish(b *testing.B) {
	srv := startServer(b, &server.Options{JetStream: true})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}}); err != nil {
		b.Fatal(err)
	}
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
	srv := startServer(b, &server.Options{JetStream: true})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Duplicates: DefaultDuplicateWindow}); err != nil {
		b.Fatal(err)
	}
	data := benchEvents(1)[0].Data
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		m := &nats.Msg{Subject: "bench.exec", Data: data, Header: nats.Header{headerFormat: {FormatVersion}, headerContentType: {contentMsgpack}, jetstream.MsgIDHeader: {"h.b.r.exec." + strconv.Itoa(i)}}}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	reportEvents(b, b.N)
}

// BenchmarkJetStreamSinkBatched is BenchmarkJetStreamSinkAsync with 100
// events per message; compare events/s with it.
func BenchmarkJetStreamSinkBatched(b *testing.B) {
	srv := startServer(b, &server.Options{JetStream: true})
	s, err := NewNATS(context.Background(), "bench", NATSOptions{URL: srv.ClientURL(), Subject: "bench.{source}", Host: "h", BootID: "b",
		BatchMaxEvents: 100, JetStream: &JetStreamOptions{Stream: "BENCH", Create: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	benchSink(b, s)
}
