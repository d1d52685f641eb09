package sinks

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/pipeline"
)

// benchBatch makes 256 events of about 200 bytes, the size the issue's
// reference figures use.
func benchBatch() []pipeline.Event {
	batch := make([]pipeline.Event, 256)
	for i := range batch {
		batch[i] = seqEvent("exec", uint64(i+1), strings.Repeat("c", 120))
	}
	return batch
}

func BenchmarkNATSCoreSink(b *testing.B) {
	srv := startServer(b, nil)
	s, err := NewNATS(context.Background(), "bench", NATSOptions{URL: srv.ClientURL(), Subject: "bench.{source}", Host: "h"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	batch := benchBatch()
	b.ReportAllocs()
	b.SetBytes(int64(len(batch[0].Data)))
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		s.Write(context.Background(), batch)
	}
	s.nc.Flush()
}

// BenchmarkNATSBarePublish is the reference: nats.go publishing the same
// bytes in a loop, with nothing of sluice around it.
func BenchmarkNATSBarePublish(b *testing.B) {
	srv := startServer(b, nil)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	data := benchBatch()[0].Data
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		nc.Publish("bench.exec", data)
	}
	nc.Flush()
}

// BenchmarkNATSBarePublishMsg is the same loop publishing the sink's exact
// message: the same payload and the same headers.
func BenchmarkNATSBarePublishMsg(b *testing.B) {
	srv := startServer(b, nil)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	m := &nats.Msg{Subject: "bench.exec", Data: benchBatch()[0].Data, Header: nats.Header{"Sluice-Format": {FormatVersion}, "Content-Type": {"application/msgpack"}}}
	b.ReportAllocs()
	b.SetBytes(int64(len(m.Data)))
	for b.Loop() {
		nc.PublishMsg(m)
	}
	nc.Flush()
}

// BenchmarkJetStreamBareAsync is nats.go's own async publishing with a
// 4096-message window, acknowledgements awaited at the end.
func BenchmarkJetStreamBareAsync(b *testing.B) {
	srv := startServer(b, &server.Options{JetStream: true})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}}); err != nil {
		b.Fatal(err)
	}
	data := benchBatch()[0].Data
	b.ReportAllocs()
	for b.Loop() {
		if _, err := js.PublishAsync("bench.exec", data); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
}

func BenchmarkJetStreamSinkAsync(b *testing.B) {
	srv := startServer(b, &server.Options{JetStream: true})
	s, err := NewNATS(context.Background(), "bench", NATSOptions{URL: srv.ClientURL(), Subject: "bench.{source}", Host: "h", BootID: "b",
		JetStream: &JetStreamOptions{Stream: "BENCH", Create: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	batch := benchBatch()
	b.ReportAllocs()
	b.ResetTimer()
	seq := uint64(0)
	for i := 0; i < b.N; i += len(batch) {
		for j := range batch {
			seq++
			batch[j].Seq = seq // fresh ids, so deduplication does not skip work
		}
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
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
	data := benchBatch()[0].Data
	b.ReportAllocs()
	for b.Loop() {
		if _, err := js.Publish(ctx, "bench.exec", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJetStreamSinkBatched is BenchmarkJetStreamSinkAsync with 100
// events per message; compare events/op with it.
func BenchmarkJetStreamSinkBatched(b *testing.B) {
	srv := startServer(b, &server.Options{JetStream: true})
	s, err := NewNATS(context.Background(), "bench", NATSOptions{URL: srv.ClientURL(), Subject: "bench.{source}", Host: "h", BootID: "b",
		BatchMaxEvents: 100, JetStream: &JetStreamOptions{Stream: "BENCH", Create: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	batch := benchBatch()
	b.ReportAllocs()
	b.ResetTimer()
	seq := uint64(0)
	for i := 0; i < b.N; i += len(batch) {
		for j := range batch {
			seq++
			batch[j].Seq = seq
		}
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
}
