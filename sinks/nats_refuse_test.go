package sinks

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/natstest"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// bigEvent is a numbered event with a comm of size bytes.
func bigEvent(source string, seq, n uint64, size int) pipeline.Event {
	b := codec.AppendUint(codec.AppendString(appendEnvelope(source, seq, 2), "n"), n)
	b = codec.AppendString(codec.AppendString(b, "comm"), strings.Repeat("x", size))
	return pipeline.Event{Data: b, Source: source, Seq: seq}
}

// createStream makes the stream a test's sink publishes to, with limits the
// sink would not set itself.
func createStream(t *testing.T, url string, cfg jetstream.StreamConfig) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

// writeLosses returns the WriteLoss values in err, by reason.
func lossesByReason(err error) map[string][]pipeline.Event {
	out := map[string][]pipeline.Event{}
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *pipeline.WriteLoss:
			out[e.Reason] = append(out[e.Reason], e.Events...)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			walk(errors.Unwrap(err))
		}
	}
	walk(err)
	return out
}

// TestJetStreamRefusedMessagesDoNotWedge: messages the stream refuses for
// what they are (larger than its max_msg_size; a subject no stream listens
// on) are dropped with reason rejected and reported as lost, alone; the
// sink does not spool them, the events around them are stored, and later
// writes go straight to the server, where a sink that retried them would
// hold everything behind them in the spool forever.
func TestJetStreamRefusedMessagesDoNotWedge(t *testing.T) {
	for _, mode := range faultModes {
		t.Run(mode.name, func(t *testing.T) {
			srv := startServer(t, &server.Options{JetStream: true})
			createStream(t, srv.ClientURL(), jetstream.StreamConfig{Name: "SLUICE", Subjects: []string{"sluice.exec"}, MaxMsgSize: 4096, Duplicates: time.Minute})
			s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: srv.ClientURL(), Subject: "sluice.{source}", Host: "h1", BootID: "b1",
				SpoolDir: t.TempDir(), BatchMaxEvents: mode.batch, JetStream: &JetStreamOptions{Stream: "SLUICE", AckTimeout: time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			batch := []pipeline.Event{
				numberedEvent("exec", 1, 1),
				bigEvent("exec", 2, 2, 8000), // past the stream's max_msg_size
				numberedEvent("exec", 3, 3),
				numberedEvent("open", 1, 4), // on a subject the stream does not hold
				numberedEvent("exec", 4, 5),
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			losses := lossesByReason(s.Write(ctx, batch))
			var lostN []uint64
			for _, ev := range losses[ReasonRejected] {
				v, _ := codec.Lookup(ev.Data, "n")
				n, _, _ := codec.ReadUint(v)
				lostN = append(lostN, n)
			}
			if len(losses) != 1 || len(lostN) != 2 || lostN[0] != 2 || lostN[1] != 4 {
				t.Fatalf("lost %d events for %d reasons (rejected: n = %v); want exactly events 2 and 4, rejected", len(losses[ReasonRejected]), len(losses), lostN)
			}
			if s.spool.Len() != 0 {
				t.Fatalf("the spool holds %d bytes: a refused message was spooled", s.spool.Len())
			}
			if err := s.Write(ctx, []pipeline.Event{numberedEvent("exec", 5, 6)}); err != nil {
				t.Fatalf("write after the refusal: %v", err)
			}
			if s.spooled.Value() != 0 {
				t.Errorf("spooled %d events; a refusal is not an outage", s.spooled.Value())
			}
			seen := streamCounts(t, srv.ClientURL(), "SLUICE", "n")
			for _, n := range []uint64{1, 3, 5, 6} {
				if seen[n] != 1 {
					t.Errorf("event %d stored %d times, want once (stream holds %v)", n, seen[n], seen)
				}
			}
		})
	}
}

// TestSpoolReplayDropsRefusedMessages: a spool that an earlier run left
// holding messages no server takes (a subject longer than a server's
// protocol line, which makes it close the connection for good; a message
// past the stream's max_msg_size) between good ones. The replay delivers
// the good ones, drops the others with reason rejected (counted, logged,
// and reported by a loss record in the stream), and the spool empties.
func TestSpoolReplayDropsRefusedMessages(t *testing.T) {
	srv := startServer(t, &server.Options{JetStream: true})
	createStream(t, srv.ClientURL(), jetstream.StreamConfig{Name: "SLUICE", Subjects: []string{"sluice.>"}, MaxMsgSize: 4096, Duplicates: time.Minute})
	spoolDir := t.TempDir()
	sp, err := OpenSpool(spoolDir, SpoolOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	spooledMsg := func(subject string, ev pipeline.Event) []byte {
		m := newOutMsg(subject, contentMsgpack, "h1.b1.r0.exec."+string(rune('0'+ev.Seq)), ev.Data)
		m.first, m.end = 0, 1
		return encodeSpooled(m)
	}
	long := "sluice." + strings.Repeat("p", 5000)
	recs := [][]byte{
		spooledMsg("sluice.exec", numberedEvent("exec", 1, 1)),
		spooledMsg(long, numberedEvent("exec", 2, 2)),
		spooledMsg("sluice.exec", bigEvent("exec", 3, 3, 8000)),
		spooledMsg("sluice.exec", numberedEvent("exec", 4, 4)),
	}
	if n, _, err := sp.Append(recs); err != nil || n != len(recs) {
		t.Fatalf("spool: %d, %v", n, err)
	}
	sp.Close()

	reg := pipeline.NewRegistry()
	s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: srv.ClientURL(), Subject: "sluice.{source}", Host: "h1", BootID: "b1",
		SpoolDir: spoolDir, Metrics: reg, JetStream: &JetStreamOptions{Stream: "SLUICE", AckTimeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	waitSpoolEmpty(t, s, 30*time.Second)
	if got := s.spoolRejected.Value(); got != 2 {
		t.Errorf("sluice_sink_spool_lost_total{reason=rejected} = %d, want 2", got)
	}
	if !s.nc.IsConnected() {
		t.Error("the sink lost its connection: a refused message reached the server")
	}
	seen := streamCounts(t, srv.ClientURL(), "SLUICE", "n")
	if seen[1] != 1 || seen[4] != 1 || seen[2] != 0 || seen[3] != 0 {
		t.Errorf("stream holds events %v, want 1 and 4 once", seen)
	}
	// The loss record: 2 events of source exec, seq 2..3, rejected.
	rec := streamLossRecord(t, srv.ClientURL(), "SLUICE")
	for key, want := range map[string]string{"reason": ReasonRejected, "source": "exec", "component": "sink.siem.spool"} {
		v, _ := codec.Lookup(rec, key)
		if got, _, _ := codec.ReadString(v); string(got) != want {
			t.Errorf("loss record %s = %q, want %q", key, got, want)
		}
	}
	for key, want := range map[string]uint64{"count": 2, "seq_first": 2, "seq_last": 3} {
		v, _ := codec.Lookup(rec, key)
		if got, _, _ := codec.ReadUint(v); got != want {
			t.Errorf("loss record %s = %d, want %d", key, got, want)
		}
	}
}

// streamLossRecord returns the one loss record a stream holds.
func streamLossRecord(t *testing.T, url, stream string) []byte {
	t.Helper()
	var recs [][]byte
	for _, m := range natstest.StreamMessages(t, url, stream, 10*time.Second) {
		if v, ok := codec.Lookup(m.Data(), "type"); ok && bytes.Equal(v[1:], []byte("loss")) {
			recs = append(recs, m.Data())
		}
	}
	if len(recs) != 1 {
		t.Fatalf("stream holds %d loss records, want 1", len(recs))
	}
	return recs[0]
}

// TestSubjectTemplateRefusesUndeliverable: templates whose literal text
// makes a subject a server cannot deliver are refused when parsed (so by
// `config validate`), and well-formed ones pass.
func TestSubjectTemplateRefusesUndeliverable(t *testing.T) {
	for _, bad := range []string{"a..b", "a.", ".a", "a.{x}.", "{x}..{y}", "a.*", "a.>", "a.b*", "sluice.>.{x}", "a\tb", "a\x01b", "a." + strings.Repeat("x", MaxSubjectLen)} {
		if _, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
	for _, good := range []string{"a", "a.{x}.b", "{x}", "{x}.{y}", "a.{x}{y}", "sluice.events.{host}.{source}", "a-b_c.{x}-y"} {
		if _, err := ParseSubject(good); err != nil {
			t.Errorf("ParseSubject(%q): %v", good, err)
		}
	}
	for subj, ok := range map[string]bool{"a.b": true, "a..b": false, "a.": false, "a.*": false, "a.>": false, "a b": false, strings.Repeat("x", MaxSubjectLen+1): false} {
		if err := CheckSubject(subj); (err == nil) != ok {
			t.Errorf("CheckSubject(%q) = %v", subj[:min(len(subj), 20)], err)
		}
	}
}

// TestSubjectLongValueShortened: a field value whose escaped form would
// make a subject longer than the server's protocol line (an attacker's
// long path, say) is shortened into one token with a hash of the whole
// value, and the event is delivered; the server keeps the connection.
func TestSubjectLongValueShortened(t *testing.T) {
	srv := startServer(t, nil)
	_, ch := subscribe(t, srv.ClientURL(), "ev.>")
	s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: srv.ClientURL(), Subject: "ev.{comm}.x", Host: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	long1, long2 := strings.Repeat("/", 4000)+"a", strings.Repeat("/", 4000)+"b"
	for _, comm := range []string{long1, long2, long1} {
		if err := s.Write(context.Background(), []pipeline.Event{seqEvent("exec", 1, comm)}); err != nil {
			t.Fatal(err)
		}
	}
	got := []string{recv(t, ch).Subject, recv(t, ch).Subject, recv(t, ch).Subject}
	tok := strings.TrimSuffix(strings.TrimPrefix(got[0], "ev."), ".x")
	if len(tok) > MaxSubjectToken || !strings.Contains(tok, "~") || !strings.HasPrefix(tok, "%2F%2F") {
		t.Errorf("token %q (%d bytes): want at most %d bytes, the escaped prefix, ~ and a hash", tok, len(tok), MaxSubjectToken)
	}
	if got[0] == got[1] || got[0] != got[2] {
		t.Errorf("subjects %q: want different values told apart and the same value rendered the same", got)
	}
	if !s.nc.IsConnected() {
		t.Error("the server closed the connection")
	}
}
