package sinks

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/pipeline"
)

// natsMsg returns the message as msgSender publishes it, with its headers.
func (o *outMsg) natsMsg(reply string) *nats.Msg {
	var p msgSender
	p.fill(o, reply)
	m := p.msg
	m.Header = maps.Clone(p.msg.Header)
	return &m
}

// TestJetStreamWindowBoundsOutstandingAcks: with a window of max_pending
// acknowledgements, the sink never has more messages unacknowledged than
// that, down to one at a time, and every event of a Write much larger than
// the window reaches the stream once.
func TestJetStreamWindowBoundsOutstandingAcks(t *testing.T) {
	for _, window := range []int{1, 3, 64} {
		t.Run(strconv.Itoa(window), func(t *testing.T) {
			srv := startServer(t, &server.Options{JetStream: true})
			s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: srv.ClientURL(), Subject: "sluice.{source}", Host: "h1", BootID: "b1",
				JetStream: &JetStreamOptions{Stream: "SLUICE", Create: true, MaxPending: window}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			if n, _ := s.WriteBatch(); n != window {
				t.Errorf("asks for writes of %d events, want the window, %d", n, window)
			}
			var batch []pipeline.Event
			for i := uint64(1); i <= 300; i++ {
				batch = append(batch, seqEvent("exec", i, "c"))
			}
			if err := s.Write(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			acks := s.acks.Load()
			acks.mu.Lock()
			peak := acks.peak
			acks.mu.Unlock()
			if peak > window || peak < 1 {
				t.Errorf("%d acknowledgements outstanding at once, window %d", peak, window)
			}
			seen := streamSeqs(t, srv.ClientURL(), "SLUICE")
			for seq := uint64(1); seq <= 300; seq++ {
				if seen[seq] != 1 {
					t.Fatalf("seq %d stored %d times", seq, seen[seq])
				}
			}
		})
	}
}

// TestJSAcksRoundsDoNotMix: an acknowledgement that arrives after its
// round was given up on (a late ack of a timed-out message) does not count
// for the message of the next round that has the same place, and a
// stream's error answer is the message's failure, with the stream's code.
func TestJSAcksRoundsDoNotMix(t *testing.T) {
	srv := startServer(t, nil)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	acks, err := newJSAcks(nc)
	if err != nil {
		t.Fatal(err)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	acks.begin(2)
	acks.sending(0, 10)
	acks.sending(1, 10)
	stale := acks.reply(1)
	if states, _ := acks.end(); states[0] != ackPending || states[1] != ackPending {
		t.Fatalf("unanswered round: %v", states)
	}
	acks.begin(2)
	acks.sending(0, 10)
	acks.sending(1, 10)
	if stale == acks.reply(1) {
		t.Fatalf("two rounds share the reply subject %q", stale)
	}
	// The late ack first: the subscription handles messages in order.
	nc.Publish(stale, []byte(`{"stream":"S","seq":1}`))
	nc.Publish(acks.reply(1), []byte(`{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"},"stream":"S","seq":0}`))
	nc.Publish(acks.reply(0), []byte(`{"stream":"S","seq":2}`))
	if err := acks.await(context.Background(), 0, 10*time.Second, timer); err != nil {
		t.Fatal(err)
	}
	states, errs := acks.end()
	if states[0] != ackOK {
		t.Errorf("message 0: state %d, want acknowledged", states[0])
	}
	apiErr, ok := errors.AsType[*jetstream.APIError](errs[1])
	if states[1] != ackFailed || !ok || apiErr.ErrorCode != jetstream.JSErrCodeStreamMessageExceedsMaximum {
		t.Errorf("message 1: state %d, error %v; want failed with the stream's error 10054", states[1], errs[1])
	}
}

// TestJetStreamSilentStreamTimesOut: a subject something listens on but no
// stream stores (so the server sends no no-responders answer) never
// acknowledges. The Write gives up after the ack timeout, even with a
// window smaller than the batch (the window stays full: the rest is not
// sent), and reports every event as lost; it does not wait a timeout per
// message.
func TestJetStreamSilentStreamTimesOut(t *testing.T) {
	srv := startServer(t, &server.Options{JetStream: true})
	_, ch := subscribe(t, srv.ClientURL(), "quiet.>")
	s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: srv.ClientURL(), Subject: "quiet.{source}", Host: "h1", BootID: "b1",
		JetStream: &JetStreamOptions{AckTimeout: 200 * time.Millisecond, MaxPending: 4, Retries: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	var batch []pipeline.Event
	for i := uint64(1); i <= 20; i++ {
		batch = append(batch, seqEvent("exec", i, "c"))
	}
	err = s.Write(context.Background(), batch)
	lost := lossesByReason(err)[pipeline.ReasonSinkError]
	if len(lost) != len(batch) || !errors.Is(err, errAckTimeout) {
		t.Fatalf("lost %d of %d events (%v), want all, timed out", len(lost), len(batch), err)
	}
	// Two attempts of at most a window each reached the subject.
	got := 0
	for len(ch) > 0 {
		<-ch
		got++
	}
	if got > 8 {
		t.Errorf("%d messages sent with a window of 4 and one retry", got)
	}
}

// TestAckError reads the stream's answers as nats.go does, without
// decoding the common one.
func TestAckError(t *testing.T) {
	for _, c := range []struct {
		name string
		msg  nats.Msg
		want error
	}{
		{"stored", nats.Msg{Data: []byte(`{"stream":"S","seq":7}`)}, nil},
		{"duplicate", nats.Msg{Data: []byte(`{"stream":"S","seq":7,"duplicate":true}`)}, nil},
		{"stream named error", nats.Msg{Data: []byte(`{"stream":"error","seq":7}`)}, nil},
		{"no stream", nats.Msg{Header: nats.Header{"Status": {"503"}}}, jetstream.ErrNoStreamResponse},
		{"empty", nats.Msg{}, jetstream.ErrInvalidJSAck},
		{"not JSON", nats.Msg{Data: []byte(`{"stream":"S",`)}, jetstream.ErrInvalidJSAck},
		{"no stream name", nats.Msg{Data: []byte(`{"seq":7}`)}, jetstream.ErrInvalidJSAck},
	} {
		if got := ackError(&c.msg); !errors.Is(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	err := ackError(&nats.Msg{Data: []byte(`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`)})
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); !ok || apiErr.ErrorCode != 10077 {
		t.Errorf("error answer: %v", err)
	}
}

// TestJetStreamPublishAllocatesLessThanNatsGo: publishing a batch with
// the sink, one event per message, allocates clearly less per event than
// nats.go's own asynchronous publishing of the same messages (a future, a
// map entry, a reply subject and a decoded ack each), in the same process
// and server, whose own allocations both include.
func TestJetStreamPublishAllocatesLessThanNatsGo(t *testing.T) {
	srv := startServer(t, &server.Options{JetStream: true})
	s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: srv.ClientURL(), Subject: "bench.{source}", Host: "h", BootID: "b",
		JetStream: &JetStreamOptions{Stream: "BENCH", Create: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(DefaultMaxPending))
	if err != nil {
		t.Fatal(err)
	}
	batch := benchEvents(2048)
	seq := uint64(0)
	sinkWrite := func() {
		for i := range batch {
			seq++
			batch[i].Seq = seq
		}
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	natsGoWrite := func() {
		futures := make([]jetstream.PubAckFuture, len(batch))
		for i := range batch {
			seq++
			m := newOutMsg("bench.exec", contentMsgpack, "h.b.r.exec."+strconv.FormatUint(seq, 10), batch[i].Data).natsMsg("")
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				t.Fatal(err)
			}
			futures[i] = f
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatal(err)
			}
		}
	}
	sinkWrite() // warm up: subscriptions, buffers
	natsGoWrite()
	perEvent := func(write func()) float64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 3 {
			write()
		}
		runtime.ReadMemStats(&after)
		return float64(after.Mallocs-before.Mallocs) / float64(3*len(batch))
	}
	sinkAllocs, natsGoAllocs := perEvent(sinkWrite), perEvent(natsGoWrite)
	t.Logf("allocations per event, server included: sink %.1f, nats.go async %.1f", sinkAllocs, natsGoAllocs)
	if sinkAllocs > 0.75*natsGoAllocs {
		t.Errorf("the sink allocates %.1f times per event, nats.go's async publishing %.1f: want at most 3/4 of it", sinkAllocs, natsGoAllocs)
	}
}
