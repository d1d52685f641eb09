package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/internal/natstest"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// startServer runs a real NATS server in-process on a free loopback port.
func startServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := runServer(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runServer is startServer for goroutines other than the test's, which
// must not call t.Fatal: it returns the failure instead.
func runServer(t testing.TB, opts *server.Options) (*server.Server, error) {
	if opts == nil {
		opts = &server.Options{}
	}
	opts.Host = "127.0.0.1"
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	opts.NoLog, opts.NoSigs = true, true
	if opts.JetStream && opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("nats server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s, nil
}

// seqEvent is an event like the decoder makes, with a comm field.
func seqEvent(source string, seq uint64, comm string) pipeline.Event {
	b := codec.AppendString(codec.AppendString(appendEnvelope(source, seq, 1), "comm"), comm)
	return pipeline.Event{Data: b, Source: source, Seq: seq}
}

// appendEnvelope starts an event map of the envelope's five keys and extra
// more, which the caller appends.
func appendEnvelope(source string, seq uint64, extra int) []byte {
	b := codec.AppendMapHeader(nil, 5+extra)
	b = codec.AppendString(codec.AppendString(b, "time"), "2026-11-22T10:00:00Z")
	b = codec.AppendString(codec.AppendString(b, "host"), "h1")
	b = codec.AppendString(codec.AppendString(b, "source"), source)
	b = codec.AppendString(codec.AppendString(b, "gadget"), "trace_exec")
	return codec.AppendUint(codec.AppendString(b, "seq"), seq)
}

func subscribe(t *testing.T, url, subject string, opts ...nats.Option) (*nats.Conn, chan *nats.Msg) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ch := make(chan *nats.Msg, 1024)
	if _, err := nc.ChanSubscribe(subject, ch); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return nc, ch
}

func recv(t *testing.T, ch chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
	}
	return nil
}

func TestNATSCoreEncodings(t *testing.T) {
	srv := startServer(t, nil)
	for _, enc := range []string{"msgpack", "json"} {
		t.Run(enc, func(t *testing.T) {
			_, ch := subscribe(t, srv.ClientURL(), "sluice.>")
			s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: srv.ClientURL(), Subject: "sluice.{host}.{source}", Encoding: enc, Host: "h1"})
			if err != nil {
				t.Fatal(err)
			}
			ev := seqEvent("exec", 1, "bash")
			if err := s.Write(context.Background(), []pipeline.Event{ev}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			m := recv(t, ch)
			if m.Subject != "sluice.h1.exec" || m.Header.Get("Sluice-Format") != FormatVersion {
				t.Errorf("subject %q, format header %q", m.Subject, m.Header.Get("Sluice-Format"))
			}
			var got map[string]any
			if enc == "msgpack" {
				if string(m.Data) != string(ev.Data) {
					t.Error("msgpack payload is not the event's bytes passed through")
				}
				msgpack.Unmarshal(m.Data, &got)
			} else if err := json.Unmarshal(m.Data, &got); err != nil {
				t.Fatalf("payload is not JSON: %v", err)
			}
			if got["comm"] != "bash" || fmt.Sprint(got["seq"]) != "1" {
				t.Errorf("payload = %v", got)
			}
		})
	}
}

func TestSubjectEscaping(t *testing.T) {
	srv := startServer(t, nil)
	_, ch := subscribe(t, srv.ClientURL(), ">")
	s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: srv.ClientURL(), Subject: "ev.{comm}.x", Host: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	cases := map[string]string{
		"a.b":       "ev.a%2Eb.x",
		"*":         "ev.%2A.x",
		">":         "ev.%3E.x",
		"two words": "ev.two%20words.x",
		"tab\there": "ev.tab%09here.x",
		"":          "ev._.x",
		"ok-name_1": "ev.ok-name_1.x",
		"%2E":       "ev.%252E.x",
	}
	for comm := range cases {
		if err := s.Write(context.Background(), []pipeline.Event{seqEvent("exec", 1, comm)}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	for range cases {
		got[recv(t, ch).Subject] = true
	}
	for comm, want := range cases {
		if !got[want] {
			t.Errorf("comm %q: no message on %q (got %v)", comm, want, got)
		}
	}
	if _, err := ParseSubject("a.{comm"); err == nil {
		t.Error("unclosed brace accepted")
	}
	if _, err := ParseSubject("a b.{comm}"); err == nil {
		t.Error("whitespace in a literal accepted")
	}
}

// TestSubjectScalars: numbers and booleans render as their text; a field
// the event lacks, or one that is not a scalar, renders as "_".
func TestSubjectScalars(t *testing.T) {
	tmpl, err := ParseSubject("ev.{pid}.{delta}.{big}.{ok}.{args}.{nosuch}")
	if err != nil {
		t.Fatal(err)
	}
	b := codec.AppendMapHeader(nil, 5)
	b = codec.AppendUint(codec.AppendString(b, "pid"), 123456)
	b = codec.AppendInt(codec.AppendString(b, "delta"), -7)
	b = codec.AppendUint(codec.AppendString(b, "big"), 1<<63)
	b = codec.AppendBool(codec.AppendString(b, "ok"), true)
	b = codec.AppendArrayHeader(codec.AppendString(b, "args"), 0)
	got := string(tmpl.Append(nil, &pipeline.Event{Data: b}))
	if want := "ev.123456.-7.9223372036854775808.true._._"; got != want {
		t.Errorf("subject %q, want %q", got, want)
	}
}

func streamSeqs(t *testing.T, url, stream string) map[uint64]int {
	t.Helper()
	return streamCounts(t, url, stream, "seq")
}

// streamCounts reads a whole stream and counts how often each value of the
// integer field key appears in its events, single or batched.
func streamCounts(t *testing.T, url, stream, key string) map[uint64]int {
	t.Helper()
	seen := map[uint64]int{}
	for _, m := range natstest.StreamMessages(t, url, stream, 60*time.Second) {
		for _, ev := range msgEvents(t, m.Headers(), m.Data()) {
			if v, ok := codec.Lookup(ev, key); ok {
				n, _, _ := codec.ReadUint(v)
				seen[n]++
			}
		}
	}
	return seen
}

// msgEvents splits a message into its events, as msgpack maps: itself, the
// elements of a batch, or (JSON and JSON lines) each object re-encoded,
// integers kept as integers.
func msgEvents(t *testing.T, h nats.Header, data []byte) [][]byte {
	t.Helper()
	switch h.Get(headerContentType) {
	case contentJSON, contentJSONLines:
		var evs [][]byte
		for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.UseNumber()
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("JSON message line %q: %v", line, err)
			}
			for k, v := range m {
				if n, ok := v.(json.Number); ok {
					if i, err := n.Int64(); err == nil {
						m[k] = i
					}
				}
			}
			b, err := msgpack.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, b)
		}
		return evs
	case contentMsgpackArray:
	default:
		return [][]byte{data}
	}
	n, rest, err := codec.ReadArrayHeader(data)
	if err != nil {
		t.Fatalf("batched message: %v", err)
	}
	evs := make([][]byte, n)
	for i := range evs {
		size, err := codec.Skip(rest)
		if err != nil {
			t.Fatalf("batched message: %v", err)
		}
		evs[i], rest = rest[:size], rest[size:]
	}
	return evs
}

func TestJetStreamDedupAndCreate(t *testing.T) {
	srv := startServer(t, &server.Options{JetStream: true})
	s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: srv.ClientURL(), Subject: "sluice.{host}.{source}", Host: "h1", BootID: "b1",
		JetStream: &JetStreamOptions{Stream: "SLUICE", Create: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	var batch []pipeline.Event
	for i := uint64(1); i <= 500; i++ {
		batch = append(batch, seqEvent("exec", i, "c"))
	}
	// The same batch twice, as a retry or a replay would send it: the
	// stream keeps one copy of each.
	for range 2 {
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	seen := streamSeqs(t, srv.ClientURL(), "SLUICE")
	if len(seen) != 500 {
		t.Fatalf("stream holds %d distinct sequence numbers, want 500", len(seen))
	}
	for seq, n := range seen {
		if n != 1 {
			t.Fatalf("seq %d stored %d times", seq, n)
		}
	}
	if _, err := NewNATS(context.Background(), "x", NATSOptions{URL: srv.ClientURL(), Subject: "a", JetStream: &JetStreamOptions{Stream: "MISSING"}}); err == nil || !strings.Contains(err.Error(), "create = true") {
		t.Errorf("missing stream without create: %v", err)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestJetStreamBatching(t *testing.T) {
	srv := startServer(t, &server.Options{JetStream: true})
	for _, enc := range []string{"msgpack", "json"} {
		t.Run(enc, func(t *testing.T) {
			stream := "B" + strings.ToUpper(enc)
			s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: srv.ClientURL(), Subject: "b" + enc + ".{source}", Encoding: enc, Host: "h1", BootID: "b1",
				BatchMaxEvents: 100, JetStream: &JetStreamOptions{Stream: stream, Create: true}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			var batch []pipeline.Event
			for i := uint64(1); i <= 1000; i++ {
				batch = append(batch, seqEvent("exec", i, "c"))
			}
			for range 2 { // the second write is a retry: deduplicated per message
				if err := s.Write(context.Background(), batch); err != nil {
					t.Fatal(err)
				}
			}
			nc, _ := nats.Connect(srv.ClientURL())
			defer nc.Close()
			js, _ := jetstream.New(nc)
			st, _ := js.Stream(context.Background(), stream)
			info, _ := st.Info(context.Background())
			if info.State.Msgs != 10 {
				t.Fatalf("stream holds %d messages, want 10 batches of 100", info.State.Msgs)
			}
			cons, _ := st.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
			msgs, _ := cons.Fetch(10)
			seen := map[uint64]bool{}
			for m := range msgs.Messages() {
				var evs []map[string]any
				if enc == "json" {
					for _, line := range strings.Split(strings.TrimSpace(string(m.Data())), "\n") {
						var ev map[string]any
						if err := json.Unmarshal([]byte(line), &ev); err != nil {
							t.Fatal(err)
						}
						evs = append(evs, ev)
					}
				} else if err := msgpack.Unmarshal(m.Data(), &evs); err != nil {
					t.Fatal(err)
				}
				for _, ev := range evs {
					var seq uint64
					fmt.Sscan(fmt.Sprint(ev["seq"]), &seq)
					seen[seq] = true
				}
			}
			if len(seen) != 1000 {
				t.Errorf("batches carried %d distinct events, want 1000", len(seen))
			}
		})
	}
}

// TestNATSBatchThroughPipeline: a pipeline hands its sinks batches of 10,
// but a NATS sink with batch { max_events = 100 } asks for its own, so the
// stream receives full messages of 100 events.
func TestNATSBatchThroughPipeline(t *testing.T) {
	srv := startServer(t, &server.Options{JetStream: true})
	s, err := NewNATS(context.Background(), "bus", NATSOptions{URL: srv.ClientURL(), Subject: "p.{source}", Host: "h", BootID: "b",
		BatchMaxEvents: 100, BatchMaxDelay: 5 * time.Second, JetStream: &JetStreamOptions{Stream: "P", Create: true}})
	if err != nil {
		t.Fatal(err)
	}
	src := &finiteSource{name: "exec", n: 1000}
	p, err := pipeline.New(pipeline.Spec{Name: "p", Sources: []pipeline.Source{src}, Sinks: []pipeline.Sink{s}, BatchSize: 10, LossInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	nc, _ := nats.Connect(srv.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, _ := js.Stream(context.Background(), "P")
	info, _ := st.Info(context.Background())
	if info.State.Msgs != 10 {
		t.Errorf("stream holds %d messages, want 10 of 100 events", info.State.Msgs)
	}
	if seen := streamSeqs(t, srv.ClientURL(), "P"); len(seen) != 1000 {
		t.Errorf("stream holds %d distinct events, want 1000", len(seen))
	}
}

// TestNATSTooLarge: an event larger than the server's max_payload is
// dropped alone (reason too_large), single or in a batch, core or
// JetStream; the events around it are delivered.
func TestNATSTooLarge(t *testing.T) {
	srv := startServer(t, &server.Options{JetStream: true, MaxPayload: 4096})
	// BatchMaxBytes 0 (512 KiB) is above the server's 4 KiB: batches are
	// capped at what the server takes, so the big event alone is lost, in
	// msgpack and in JSON lines (measured as encoded, about twice as big).
	for _, tc := range []struct {
		name      string
		batch     int
		jetstream bool
		maxBytes  int
		encoding  string
	}{
		{"core", 0, false, 2048, ""}, {"core_batched", 10, false, 2048, ""},
		{"jetstream", 0, true, 2048, ""}, {"jetstream_batched", 10, true, 2048, ""},
		{"core_batched_default_bound", 10, false, 0, ""}, {"jetstream_batched_default_bound", 10, true, 0, ""},
		{"core_batched_json", 10, false, 0, "json"}, {"jetstream_batched_json", 10, true, 0, "json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := "tl." + tc.name
			o := NATSOptions{URL: srv.ClientURL(), Subject: subject, Host: "h", BootID: "b", BatchMaxEvents: tc.batch, BatchMaxBytes: tc.maxBytes, Encoding: tc.encoding}
			var ch chan *nats.Msg
			if tc.jetstream {
				o.JetStream = &JetStreamOptions{Stream: strings.ToUpper("TL_" + tc.name), Create: true}
			} else {
				_, ch = subscribe(t, srv.ClientURL(), subject)
			}
			s, err := NewNATS(context.Background(), "x", o)
			if err != nil {
				t.Fatal(err)
			}
			var batch []pipeline.Event
			for i := uint64(1); i <= 6; i++ {
				comm := strings.Repeat("c", 500)
				if i == 3 {
					comm = strings.Repeat("x", 8000)
				}
				batch = append(batch, seqEvent("exec", i, comm))
			}
			var wl *pipeline.WriteLoss
			if err := s.Write(context.Background(), batch); !errors.As(err, &wl) {
				t.Fatalf("Write = %v, want a WriteLoss", err)
			}
			if wl.Reason != ReasonTooLarge || len(wl.Events) != 1 || wl.Events[0].Seq != 3 {
				t.Errorf("lost %d events (%s); want seq 3 alone as too_large", len(wl.Events), wl.Reason)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := map[uint64]int{}
			if tc.jetstream {
				got = streamSeqs(t, srv.ClientURL(), o.JetStream.Stream)
			} else {
				for len(got) < 5 {
					m := recv(t, ch)
					for _, ev := range msgEvents(t, m.Header, m.Data) {
						got[msgSeq(ev)]++
					}
				}
			}
			if want := map[uint64]int{1: 1, 2: 1, 4: 1, 5: 1, 6: 1}; !maps.Equal(got, want) {
				t.Errorf("delivered seqs %v, want %v", got, want)
			}
		})
	}
}

// TestNATSEncodeError: an event that is not valid msgpack cannot become
// JSON; it alone is dropped (reason encode_error), single or in a batch,
// core or JetStream, and the events around it are delivered.
func TestNATSEncodeError(t *testing.T) {
	srv := startServer(t, &server.Options{JetStream: true})
	for _, tc := range []struct {
		name      string
		batch     int
		jetstream bool
	}{{"core", 0, false}, {"core_batched", 10, false}, {"jetstream", 0, true}, {"jetstream_batched", 10, true}} {
		t.Run(tc.name, func(t *testing.T) {
			subject := "enc." + tc.name
			o := NATSOptions{URL: srv.ClientURL(), Subject: subject, Encoding: "json", Host: "h", BootID: "b", BatchMaxEvents: tc.batch}
			var ch chan *nats.Msg
			if tc.jetstream {
				o.JetStream = &JetStreamOptions{Stream: strings.ToUpper("ENC_" + tc.name), Create: true}
			} else {
				_, ch = subscribe(t, srv.ClientURL(), subject)
			}
			s, err := NewNATS(context.Background(), "x", o)
			if err != nil {
				t.Fatal(err)
			}
			batch := fileBatch(1, 6)
			batch[2].Data = []byte{0xc1} // a byte msgpack never uses
			var wl *pipeline.WriteLoss
			if err := s.Write(context.Background(), batch); !errors.As(err, &wl) {
				t.Fatalf("Write = %v, want a WriteLoss", err)
			}
			if wl.Reason != ReasonEncodeError || len(wl.Events) != 1 || wl.Events[0].Seq != 3 || !strings.Contains(wl.Error(), "seq 3") {
				t.Errorf("lost %d events (%s): %v; want seq 3 alone as encode_error", len(wl.Events), wl.Reason, wl)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			msgs := 5
			if tc.batch > 0 {
				msgs = 1
			}
			var got []uint64
			if tc.jetstream {
				for _, m := range streamMessages(t, srv.ClientURL(), o.JetStream.Stream, msgs) {
					got = append(got, jsonLineSeqs(t, m.Subject, bytes.NewReader(m.Data))...)
				}
			} else {
				for range msgs {
					m := recv(t, ch)
					got = append(got, jsonLineSeqs(t, m.Subject, bytes.NewReader(m.Data))...)
				}
			}
			if want := []uint64{1, 2, 4, 5, 6}; !slices.Equal(got, want) {
				t.Errorf("delivered seqs %v, want %v", got, want)
			}
		})
	}
}
