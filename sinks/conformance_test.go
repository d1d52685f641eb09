package sinks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// sinkUnderTest is one sink implementation with a way to read back what it
// delivered, as the seq of each event (0 for a loss record).
type sinkUnderTest struct {
	sink pipeline.Sink
	read func(t *testing.T, want int) []uint64 // after Close
}

// sinkFactories build every sink implementation against real back ends.
func sinkFactories() map[string]func(t *testing.T) sinkUnderTest {
	return map[string]func(t *testing.T) sinkUnderTest{
		"stdout": func(t *testing.T) sinkUnderTest {
			var out testutil.SyncBuffer
			s, err := NewStdout("c", &out, StdoutOptions{Format: "json"})
			if err != nil {
				t.Fatal(err)
			}
			return sinkUnderTest{sink: s, read: func(t *testing.T, _ int) []uint64 { return jsonLineSeqs(t, "stdout", strings.NewReader(out.String())) }}
		},
		"file": func(t *testing.T) sinkUnderTest {
			dir := t.TempDir()
			s, err := NewFile("c", FileOptions{Path: filepath.Join(dir, "events.jsonl"), MaxSize: 32 << 10})
			if err != nil {
				t.Fatal(err)
			}
			return sinkUnderTest{sink: s, read: func(t *testing.T, _ int) []uint64 {
				seqs, _ := readEvents(t, dir, "json")
				return seqs
			}}
		},
		"nats_core": func(t *testing.T) sinkUnderTest {
			srv := startServer(t, nil)
			nc, err := nats.Connect(srv.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			ch := make(chan *nats.Msg, 1<<14) // read after all writes: room for all
			if _, err := nc.ChanSubscribe("conf.>", ch); err != nil {
				t.Fatal(err)
			}
			nc.Flush()
			s, err := NewNATS(context.Background(), "c", NATSOptions{URL: srv.ClientURL(), Subject: "conf.{source}", Host: "h"})
			if err != nil {
				t.Fatal(err)
			}
			return sinkUnderTest{sink: s, read: func(t *testing.T, want int) []uint64 {
				var seqs []uint64
				for len(seqs) < want {
					select {
					case m := <-ch:
						seqs = append(seqs, msgSeq(m.Data))
					case <-time.After(5 * time.Second):
						return seqs
					}
				}
				return seqs
			}}
		},
		"nats_jetstream_batched": func(t *testing.T) sinkUnderTest {
			srv := startServer(t, &server.Options{JetStream: true})
			s, err := NewNATS(context.Background(), "c", NATSOptions{URL: srv.ClientURL(), Subject: "conf.{source}", Host: "h", BootID: "b",
				BatchMaxEvents: 7, SpoolDir: t.TempDir(), JetStream: &JetStreamOptions{Stream: "CONF", Create: true}})
			if err != nil {
				t.Fatal(err)
			}
			return sinkUnderTest{sink: s, read: func(t *testing.T, want int) []uint64 {
				var seqs []uint64
				for seq, n := range streamCounts(t, srv.ClientURL(), "CONF", "seq") {
					for range n {
						seqs = append(seqs, seq)
					}
				}
				for _, n := range streamCounts(t, srv.ClientURL(), "CONF", "count") { // loss records
					for range n {
						seqs = append(seqs, 0)
					}
				}
				return seqs
			}}
		},
	}
}

func msgSeq(data []byte) uint64 {
	v, ok := codec.Lookup(data, "seq")
	if !ok {
		return 0
	}
	n, _, _ := codec.ReadUint(v)
	return n
}

// jsonLineSeqs returns the seq of every JSON line r holds (name says whose).
func jsonLineSeqs(t *testing.T, name string, r io.Reader) []uint64 {
	t.Helper()
	var seqs []uint64
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var ev struct{ Seq uint64 }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: line %q is not JSON: %v", name, sc.Text(), err)
		}
		seqs = append(seqs, ev.Seq)
	}
	return seqs
}

// TestSinkConformance holds every sink to the same contract: concurrent
// writers (several pipelines share a sink) lose and duplicate nothing, one
// writer's events keep their order where the sink keeps order, loss records
// travel like events, Close is idempotent, and a Write after Close fails
// at once instead of hanging or panicking.
func TestSinkConformance(t *testing.T) {
	for name, factory := range sinkFactories() {
		t.Run(name, func(t *testing.T) {
			sut := factory(t)
			const writers, batches, per = 4, 20, 25
			var wg sync.WaitGroup
			errs := make(chan error, writers*batches)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for b := range batches {
						batch := make([]pipeline.Event, per)
						for i := range batch {
							seq := uint64(w*batches*per + b*per + i + 1)
							batch[i] = seqEvent("exec", seq, fmt.Sprintf("w%d", w))
						}
						if err := sut.sink.Write(context.Background(), batch); err != nil {
							errs <- err
						}
					}
				}()
			}
			wg.Wait()
			loss := pipeline.NewLossTracker()
			loss.Add("exec", "trace_exec", "sink.c", pipeline.ReasonQueueFull, 3, 7, 9)
			recs := loss.Flush(time.Now(), "h")
			if err := sut.sink.Write(context.Background(), recs); err != nil {
				t.Fatalf("write a loss record: %v", err)
			}
			close(errs)
			for err := range errs {
				t.Errorf("write: %v", err)
			}
			if err := sut.sink.Close(context.Background()); err != nil {
				t.Fatalf("close: %v", err)
			}
			if err := sut.sink.Close(context.Background()); err != nil {
				t.Errorf("second close: %v", err)
			}
			done := make(chan error, 1)
			const lateSeq = 1 << 40
			go func() {
				done <- sut.sink.Write(context.Background(), []pipeline.Event{seqEvent("exec", lateSeq, "late")})
			}()
			select {
			case err := <-done:
				if err == nil && name != "stdout" { // stdout has nothing to close
					t.Error("write after close succeeded")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("write after close hung")
			}

			total := writers * batches * per
			got := sut.read(t, total+1)
			var lossRecords int
			var seqs []uint64
			for _, s := range got {
				if s == lateSeq {
					continue // stdout takes writes after Close
				}
				if s == 0 {
					lossRecords++
				} else {
					seqs = append(seqs, s)
				}
			}
			if lossRecords != 1 {
				t.Errorf("delivered %d loss records, want 1", lossRecords)
			}
			// Per writer, the order of delivery is the order of writing
			// (the JetStream reader returns a set, not an order).
			if name != "nats_jetstream_batched" {
				last := map[uint64]uint64{}
				for _, s := range seqs {
					w := (s - 1) / (batches * per)
					if s <= last[w] {
						t.Fatalf("writer %d: seq %d delivered after %d", w, s, last[w])
					}
					last[w] = s
				}
			}
			sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
			if len(seqs) != total || seqs[0] != 1 || seqs[len(seqs)-1] != uint64(total) {
				t.Fatalf("delivered %d events, want %d", len(seqs), total)
			}
			for i := 1; i < len(seqs); i++ {
				if seqs[i] == seqs[i-1] {
					t.Fatalf("seq %d delivered twice", seqs[i])
				}
			}
		})
	}
}
