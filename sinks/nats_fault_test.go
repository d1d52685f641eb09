package sinks

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// faultEvents is the stream of the fault-injection tests: 100,000 events,
// each carrying its position n in the stream besides the seq its run gave
// it (a restarted agent numbers from 1 again).
const faultEvents = 100_000

func numberedEvent(source string, seq, n uint64) pipeline.Event {
	b := codec.AppendUint(codec.AppendString(appendEnvelope(source, seq, 1), "n"), n)
	return pipeline.Event{Data: b, Source: source, Seq: seq}
}

// writeNumbered writes events n = from..to through s in the batches the
// sink asks the pipeline for, numbering them seq = n - seqOffset, and adds
// each batch's size to written once Write returns.
func writeNumbered(t *testing.T, s *NATS, from, to, seqOffset uint64, written *atomic.Uint64) {
	t.Helper()
	size := uint64(writeBatchSize(s))
	for start := from; start <= to; start += size {
		end := min(start+size-1, to)
		batch := make([]pipeline.Event, 0, end-start+1)
		for n := start; n <= end; n++ {
			batch = append(batch, numberedEvent("exec", n-seqOffset, n))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err := s.Write(ctx, batch)
		cancel()
		if err != nil {
			t.Fatalf("write events %d..%d: %v", start, end, err)
		}
		if written != nil {
			written.Add(uint64(len(batch)))
		}
	}
}

// checkExactlyOnce asserts the stream holds n = 1..total exactly once each.
func checkExactlyOnce(t *testing.T, url, stream string, total int) {
	t.Helper()
	seen := streamCounts(t, url, stream, "n")
	var dups, missing []uint64
	for n := uint64(1); n <= uint64(total); n++ {
		switch seen[n] {
		case 0:
			missing = append(missing, n)
		case 1:
		default:
			dups = append(dups, n)
		}
	}
	if len(missing) > 0 || len(dups) > 0 || len(seen) != total {
		t.Fatalf("stream %s holds %d distinct events of %d: %d missing (first %v), %d duplicated (first %v)",
			stream, len(seen), total, len(missing), head(missing), len(dups), head(dups))
	}
}

func head(s []uint64) []uint64 { return s[:min(len(s), 5)] }

// restartAfter shuts srv down, waits delay and starts a server on the same
// port and store. It runs beside the writing test goroutine, so it reports
// a failure to start with t.Error and returns nil.
func restartAfter(t *testing.T, srv *server.Server, store string, port int, delay time.Duration) *server.Server {
	srv.Shutdown()
	srv.WaitForShutdown()
	time.Sleep(delay)
	next, err := runServer(t, &server.Options{JetStream: true, StoreDir: store, Port: port})
	if err != nil {
		t.Errorf("restart the server: %v", err)
	}
	return next
}

var faultModes = []struct {
	name  string
	batch int
}{{"per_event", 0}, {"batched", 100}}

// TestJetStreamServerRestart stops the server while a stream of 100,000
// sequenced events is being published (publishes and acknowledgements in
// flight), restarts it on the same store a second later, and checks that
// the stream holds every event exactly once: the sink retries what was not
// acknowledged, and the stream drops the retries of what it had stored.
func TestJetStreamServerRestart(t *testing.T) {
	for _, mode := range faultModes {
		t.Run(mode.name, func(t *testing.T) {
			store, port := t.TempDir(), freePort(t)
			srv := startServer(t, &server.Options{JetStream: true, StoreDir: store, Port: port})
			url := srv.ClientURL()
			s, err := NewNATS(context.Background(), "siem", NATSOptions{URL: url, Subject: "sluice.{source}", Host: "h1", BootID: "b1",
				BatchMaxEvents: mode.batch, JetStream: &JetStreamOptions{Stream: "SLUICE", Create: true, AckTimeout: time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			var written atomic.Uint64
			restarted := make(chan *server.Server, 1)
			go func() {
				for written.Load() < faultEvents/2 {
					time.Sleep(time.Millisecond)
				}
				restarted <- restartAfter(t, srv, store, port, time.Second)
			}()
			writeNumbered(t, s, 1, faultEvents, 0, &written)
			if <-restarted == nil {
				t.FailNow()
			}
			if s.nc.Stats().Reconnects == 0 {
				t.Fatal("the sink never reconnected: the server was not stopped mid-stream")
			}
			checkExactlyOnce(t, url, "SLUICE", faultEvents)
		})
	}
}

// TestSpoolAcrossAgentRestart: the server goes away in the middle of a
// stream of 100,000 events; the sink spools what it cannot deliver and is
// closed (the agent stops); a new sink on the same spool directory, started
// while the server is still down (a restarted agent, numbering its events
// from 1 again), spools the rest; once the server is back, the spool is
// replayed in order and the stream holds every event exactly once.
func TestSpoolAcrossAgentRestart(t *testing.T) {
	for _, mode := range faultModes {
		t.Run(mode.name, func(t *testing.T) {
			store, spoolDir, port := t.TempDir(), t.TempDir(), freePort(t)
			srv := startServer(t, &server.Options{JetStream: true, StoreDir: store, Port: port})
			url := srv.ClientURL()
			opts := NATSOptions{URL: url, Subject: "sluice.{source}", Host: "h1", BootID: "b1", SpoolDir: spoolDir, BatchMaxEvents: mode.batch,
				JetStream: &JetStreamOptions{Stream: "SLUICE", Create: true, AckTimeout: 500 * time.Millisecond}}
			first, err := NewNATS(context.Background(), "siem", opts)
			if err != nil {
				t.Fatal(err)
			}
			const firstRun = 60_000
			var written atomic.Uint64
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				for written.Load() < 30_000 {
					time.Sleep(time.Millisecond)
				}
				srv.Shutdown()
				srv.WaitForShutdown()
			}()
			writeNumbered(t, first, 1, firstRun, 0, &written)
			<-stopped
			if first.spool.Len() == 0 {
				t.Fatal("nothing was spooled during the outage")
			}
			if err := first.Close(context.Background()); err != nil {
				t.Fatalf("close during the outage: %v", err)
			}

			second, err := NewNATS(context.Background(), "siem", opts)
			if err != nil {
				t.Fatalf("start during the outage: %v", err)
			}
			defer second.Close(context.Background())
			writeNumbered(t, second, firstRun+1, faultEvents, firstRun, nil) // seq from 1 again
			startServer(t, &server.Options{JetStream: true, StoreDir: store, Port: port})
			waitSpoolEmpty(t, second, 60*time.Second)
			checkExactlyOnce(t, url, "SLUICE", faultEvents)
			if second.replayed.Value() == 0 || first.spooled.Value() == 0 {
				t.Errorf("spooled %d, replayed %d: the spool was not used", first.spooled.Value(), second.replayed.Value())
			}
		})
	}
}

// TestNATSShutdown runs a pipeline into a JetStream sink and stops it. With
// a healthy server the shutdown drains every in-flight publish within the
// grace period. With a server that stops answering (a proxy that freezes
// the connection without closing it), the publishes not acknowledged within
// the ack timeout are spooled, and so is what the sink's queue still holds;
// a later start delivers them. Either way received = sent + dropped, the
// sink drops nothing, and the stream ends up with every event exactly once.
func TestNATSShutdown(t *testing.T) {
	for _, frozen := range []bool{false, true} {
		name := map[bool]string{false: "drains", true: "spools_the_rest"}[frozen]
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, &server.Options{JetStream: true})
			proxy := newFreezingProxy(t, srv.Addr().String())
			spoolDir := t.TempDir()
			reg := pipeline.NewRegistry()
			opts := NATSOptions{URL: "nats://" + proxy.addr(), Subject: "sluice.{source}", Host: "h1", BootID: "b1", SpoolDir: spoolDir, Metrics: reg,
				JetStream: &JetStreamOptions{Stream: "SLUICE", Create: true, AckTimeout: 10 * time.Second}}
			if frozen {
				opts.JetStream.AckTimeout = time.Second // well within the grace period
			}
			sink, err := NewNATS(context.Background(), "bus", opts)
			if err != nil {
				t.Fatal(err)
			}
			src := &numberedSource{name: "exec", stop: make(chan struct{})}
			p, err := pipeline.New(pipeline.Spec{Name: "p", Sources: []pipeline.Source{src}, Sinks: []pipeline.Sink{sink}, Metrics: reg,
				// The queue is small enough that a healthy server takes it
				// well within the grace period even under -race on a loaded
				// machine (one event per message; 8192 did not always).
				Queue: pipeline.QueueConfig{MaxEvents: 2048, Policy: pipeline.Block}, LossInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			const grace = 5 * time.Second
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- p.Run(ctx, grace) }()
			m := reg.Component("sink", "bus")
			for m.Sent.Value() < 5000 {
				time.Sleep(time.Millisecond)
			}
			if frozen {
				proxy.freeze()
				time.Sleep(100 * time.Millisecond) // publishes in flight, acknowledgements held
			}
			close(src.stop) // the source stops emitting; what it emitted is queued or in flight
			cancel()
			start := time.Now()
			var runErr error
			select {
			case runErr = <-ran:
			case <-time.After(30 * time.Second):
				t.Fatal("pipeline did not stop within 30s of a 5s grace period")
			}
			if took := time.Since(start); took > 2*grace {
				t.Errorf("shutdown took %s with a %s grace period", took, grace)
			}
			if runErr != nil {
				t.Errorf("Run: %v", runErr)
			}
			received, sent, dropped := m.Received.Value(), m.Sent.Value(), m.DroppedTotal()
			if received != sent+dropped {
				t.Errorf("sink: received %d != sent %d + dropped %d", received, sent, dropped)
			}
			spooled := sink.spooled.Value()
			if frozen && spooled == 0 {
				t.Fatal("nothing was spooled although the server stopped answering")
			}
			if !frozen && spooled != 0 {
				t.Errorf("healthy server: spooled %d; want everything delivered", spooled)
			}
			if dropped != 0 {
				// Within the grace period the queue drains to the server,
				// or, once an acknowledgement timed out, into the spool.
				t.Errorf("sink dropped %d events at shutdown; want none", dropped)
			}
			// A later start (the proxy works again) replays the spool.
			proxy.thaw()
			next, err := NewNATS(context.Background(), "bus", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer next.Close(context.Background())
			waitSpoolEmpty(t, next, 30*time.Second)
			seen := streamCounts(t, srv.ClientURL(), "SLUICE", "n")
			for n, c := range seen {
				if c != 1 {
					t.Fatalf("event %d stored %d times", n, c)
				}
			}
			// What the stream lacks was dropped at shutdown, counted by
			// the sink or by the pipeline's edge queue. The sink's count
			// also includes the loss records (one per source, component
			// and reason) the final flush queued behind those events.
			emitted := src.emitted.Load()
			shutdownDrops := m.Dropped(pipeline.ReasonShutdown).Value() + reg.Component("pipeline", "p").Dropped(pipeline.ReasonShutdown).Value()
			missing := emitted - uint64(len(seen))
			if shutdownDrops < missing || shutdownDrops > missing+4 {
				t.Errorf("stream holds %d of %d emitted events; %d dropped at shutdown: the rest is unaccounted for", len(seen), emitted, shutdownDrops)
			}
			t.Logf("emitted %d, spooled %d at shutdown, dropped %d (shutdown)", emitted, spooled, shutdownDrops)
		})
	}
}

// numberedSource emits numbered events as fast as the pipeline takes them
// until stop is closed.
type numberedSource struct {
	name    string
	stop    chan struct{}
	emitted atomic.Uint64
}

func (s *numberedSource) Name() string { return s.name }

func (s *numberedSource) Run(ctx context.Context, out pipeline.Emitter) error {
	var n uint64
	for {
		select {
		case <-s.stop:
			<-ctx.Done()
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		batch := make([]pipeline.Event, 256)
		for i := range batch {
			n++
			batch[i] = numberedEvent(s.name, n, n)
		}
		if err := out.Emit(ctx, batch); err != nil {
			s.emitted.Store(n) // counted by the queue as dropped at shutdown
			return nil
		}
		s.emitted.Store(n)
	}
}

// freezingProxy forwards TCP connections to a server and can freeze them:
// bytes stop flowing in both directions while the connections stay open,
// as with a server that hangs or a network that silently drops packets.
type freezingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *freezingProxy) addr() string { return p.ln.Addr().String() }

func (p *freezingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

func (p *freezingProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // the peer closed, or the proxy did
		}
	}
}

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

func (p *freezingProxy) thaw() {
	p.mu.Lock()
	p.frozen = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *freezingProxy) close() {
	p.ln.Close()
	p.thaw()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
