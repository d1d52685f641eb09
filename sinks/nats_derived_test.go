package sinks

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-dev/sluice/pipeline"
)

// TestJetStreamKeepsDerivedEvents writes what stages produce into a real
// JetStream stream: several events derived from one input (a flat-map: same
// source and seq, their own Part) and events made from no input (a tick's
// summaries: seq 0, each with its own Part). The stream's duplicate window
// must drop none of them, one event per message and batched, and a retry
// of the same batch must store nothing twice.
func TestJetStreamKeepsDerivedEvents(t *testing.T) {
	for _, mode := range faultModes {
		t.Run(mode.name, func(t *testing.T) {
			srv := startServer(t, &server.Options{JetStream: true})
			s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: srv.ClientURL(), Subject: "sluice.{source}", Host: "h1", BootID: "b1",
				BatchMaxEvents: mode.batch, JetStream: &JetStreamOptions{Stream: "SLUICE", Create: true}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			var batch []pipeline.Event
			n := uint64(0)
			for seq := uint64(1); seq <= 200; seq++ {
				for i := range 3 { // a flat-map of 3 per input
					n++
					ev := numberedEvent("exec", seq, n)
					ev.Part = uint32(i + 1)
					batch = append(batch, ev)
				}
				if seq%10 == 0 { // a tick's summaries
					for range 2 {
						n++
						ev := numberedEvent("rate_limit", 0, n)
						ev.Part = pipeline.UnsequencedPart()
						batch = append(batch, ev)
					}
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for range 2 { // the second time: a retry, deduplicated
				if err := s.Write(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
			checkExactlyOnce(t, srv.ClientURL(), "SLUICE", int(n))
		})
	}
}

// TestMsgIDNamesDerivedEvents pins the dedup id's format: a source's event
// is "<source>.<seq>", a derived one has its Part appended.
func TestMsgIDNamesDerivedEvents(t *testing.T) {
	s := &NATS{idBase: "h.b.r."}
	for _, tt := range []struct {
		ev   pipeline.Event
		want string
	}{
		{pipeline.Event{Source: "exec", Seq: 42}, "h.b.r.exec.42"},
		{pipeline.Event{Source: "exec", Seq: 42, Part: 2}, "h.b.r.exec.42.2"},
		{pipeline.Event{Source: "rate", Seq: 0, Part: 17}, "h.b.r.rate.0.17"},
	} {
		if got := s.MsgID(&tt.ev); got != tt.want {
			t.Errorf("MsgID(%+v) = %q, want %q", tt.ev, got, tt.want)
		}
	}
}
