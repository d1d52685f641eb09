package sinks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/pipeline"
)

// connState follows the sink's connection for the log, the
// sluice_sink_connected gauge and Health. Its methods are called from
// nats.go's callback goroutine and from the sink's; they are safe for
// concurrent use.
type connState struct {
	name   string
	url    string // redacted
	log    logger
	gauge  *pipeline.Gauge
	errors *pipeline.Counter // the sink's sluice_errors_total

	mu        sync.Mutex
	connected bool
	closed    bool      // for good: by Close, or by the client after a fatal error
	since     time.Time // of the last change
	lastErr   error     // why the connection is down
	attempts  int       // failed connection attempts since it went down
	limit     pipeline.LogLimiter
}

// logger is the part of *slog.Logger the sink uses.
type logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

func (c *connState) up(server string, reconnect bool) {
	c.mu.Lock()
	down := time.Since(c.since)
	wasDown := !c.connected && !c.since.IsZero()
	c.connected, c.since, c.lastErr, c.attempts = true, time.Now(), nil, 0
	c.mu.Unlock()
	c.gauge.Set(1)
	switch {
	case reconnect:
		c.log.Info("nats reconnected", "sink", c.name, "server", server, "down_for", down.Round(time.Millisecond))
	case wasDown: // the server was unreachable at start
		c.log.Info("nats connected", "sink", c.name, "server", server, "unreachable_for", down.Round(time.Millisecond))
	default:
		c.log.Info("nats connected", "sink", c.name, "server", server)
	}
}

func (c *connState) down(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	was := c.connected
	c.connected, c.since = false, time.Now()
	if err != nil {
		c.lastErr = err
	}
	c.mu.Unlock()
	c.gauge.Set(0)
	if was {
		c.errors.Inc()
		c.log.Warn("nats disconnected; reconnecting", "sink", c.name, "server", c.url, "error", err)
	}
}

// unreachable reports a connection attempt that failed: the first at once
// (the server is not there at start), the rest at most every 10 seconds.
func (c *connState) unreachable(err error) {
	c.mu.Lock()
	c.attempts++
	c.lastErr = err
	first := c.attempts == 1
	if c.since.IsZero() {
		c.since = time.Now()
	}
	attempts, since := c.attempts, c.since
	ok, suppressed := c.limit.Allow(time.Now())
	c.mu.Unlock()
	if first {
		c.errors.Inc()
	}
	if first || ok {
		c.log.Warn("nats server unreachable; reconnecting", "sink", c.name, "server", c.url, "error", err,
			"attempts", attempts, "down_for", time.Since(since).Round(time.Second), "suppressed", suppressed)
	}
}

// gone reports the connection closed by the client itself (a fatal error
// from the server, such as an authorization failure): it will not come back.
func (c *connState) gone(err error, byUs bool) {
	c.mu.Lock()
	was := c.closed
	c.closed, c.connected = true, false
	if err != nil {
		c.lastErr = err
	}
	c.mu.Unlock()
	c.gauge.Set(0)
	if !was && !byUs {
		c.errors.Inc()
		c.log.Error("nats connection closed for good; events are spooled until the agent restarts", "sink", c.name, "server", c.url, "error", err)
	}
}

// health returns nil while connected, else why not.
func (c *connState) health() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.connected:
		return nil
	case c.closed:
		return fmt.Errorf("connection to %s closed (%v)", c.url, c.lastErr)
	case c.lastErr != nil:
		return fmt.Errorf("not connected to %s for %s (%v)", c.url, time.Since(c.since).Round(time.Second), c.lastErr)
	}
	return fmt.Errorf("not connected to %s", c.url)
}

// Health reports whether the sink delivers as it should: nil while it is
// connected and its spool is empty; else an error saying what is wrong
// (disconnected and why, for how long, what the spool holds, a stream
// that is not ready), without the sink's name, which the caller adds. It
// implements pipeline.HealthReporter. Safe for concurrent use.
func (s *NATS) Health() error {
	err := s.state.health()
	var spooled int64
	if s.spool != nil {
		spooled = s.spool.Len()
	}
	switch {
	case err != nil && spooled > 0:
		return fmt.Errorf("%w; spooling, %s on disk", err, byteSize(spooled))
	case err != nil && s.spool != nil:
		return fmt.Errorf("%w; spooling", err)
	case err != nil:
		return fmt.Errorf("%w; events are lost meanwhile", err)
	case s.js != nil && s.opts.JetStream.Stream != "" && !s.streamReady.Load():
		return fmt.Errorf("stream %q not ready", s.opts.JetStream.Stream)
	case spooled > 0:
		return fmt.Errorf("replaying the spool, %s behind", byteSize(spooled))
	}
	return nil
}

var _ pipeline.HealthReporter = (*NATS)(nil)

// Spooled returns how many events of this run wait in the spool, not
// delivered yet (a next start replays them). The spool replays oldest
// first, so these are the newest it holds. Safe for concurrent use, also
// after Close.
func (s *NATS) Spooled() uint64 {
	if s.spool == nil {
		return 0
	}
	return min(uint64(max(s.spool.Events(), 0)), s.spooled.Value())
}

// spoolNoticer logs the spool's use: when events start going to it, how
// much it holds while it grows (at most every 10 seconds), and when it has
// been replayed. Called with the spool's size after each change.
type spoolNoticer struct {
	name  string
	log   logger
	mu    sync.Mutex
	using bool
	limit pipeline.LogLimiter
}

func (n *spoolNoticer) sized(bytes int64, why error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case bytes > 0 && !n.using:
		n.using = true
		n.limit.Allow(time.Now()) // the next report waits 10 s
		n.log.Warn("nats sink spooling: the server cannot take events now", "sink", n.name, "spooled", byteSize(bytes), "error", why)
	case bytes > 0:
		if ok, _ := n.limit.Allow(time.Now()); ok {
			n.log.Info("nats sink spooling", "sink", n.name, "spooled", byteSize(bytes))
		}
	case n.using:
		n.using = false
		n.log.Info("nats sink spool replayed; delivering directly again", "sink", n.name)
	}
}

// byteSize renders n bytes for people.
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// abortableDialer dials the server and keeps the connection, so that Close
// can cut it when the server stops reading (nats.go's own close flushes
// first, for up to its flusher timeout).
type abortableDialer struct {
	d       net.Dialer
	conn    atomic.Pointer[net.Conn]
	lastErr atomic.Pointer[error] // of the last dial that failed, for the log
}

func (a *abortableDialer) Dial(network, address string) (net.Conn, error) {
	c, err := a.d.DialContext(context.Background(), network, address)
	if err != nil {
		a.lastErr.Store(&err)
		return nil, err
	}
	a.conn.Store(&c)
	a.lastErr.Store(nil)
	return c, nil
}

// why replaces nats.go's "no servers available", which hides the reason,
// with the error of the last dial.
func (a *abortableDialer) why(err error) error {
	if errors.Is(err, nats.ErrNoServers) || err == nil {
		if last := a.lastErr.Load(); last != nil {
			return *last
		}
	}
	return err
}

// abort closes the current connection under the client.
func (a *abortableDialer) abort() {
	if c := a.conn.Load(); c != nil {
		(*c).Close()
	}
}

// stateOptions are the client options that feed s.state.
func (s *NATS) stateOptions() []nats.Option {
	return []nats.Option{
		nats.ConnectHandler(func(nc *nats.Conn) { s.state.up(nc.ConnectedUrlRedacted(), false) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			s.connectionLost(nats.ErrDisconnected)
			if err != nil { // nil: our own Close
				s.state.down(err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.state.up(nc.ConnectedUrlRedacted(), true)
			select {
			case s.reconnected <- struct{}{}:
			default:
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { s.state.unreachable(s.dialer.why(err)) }),
		nats.ClosedHandler(func(nc *nats.Conn) {
			s.connectionLost(nats.ErrConnectionClosed)
			s.state.gone(nc.LastError(), s.closing.Load())
		}),
	}
}

// connectionLost fails the acknowledgements a JetStream publish waits for:
// they went with the connection.
func (s *NATS) connectionLost(err error) {
	if a := s.acks.Load(); a != nil {
		a.connectionLost(err)
	}
}
