package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/sinks"
)

// This file is the fleet's control plane on NATS (docs/operations.md,
// "Rolling out a stage version"): the agent watches a KV bucket whose keys
// name stages (<stage>, or <group>.<stage>) and whose values name the
// version each must run, and writes what each stage runs into a status
// bucket. `sluice rollout` writes the first and reads the second. The
// connection is the agent's own, separate from any NATS sink, and nothing
// on the data path waits for it.

// Timing of the control plane.
const (
	// StatusHeartbeat is how often an agent rewrites its status entries
	// even when nothing changed, so that readers can tell a live agent from
	// one that went away.
	StatusHeartbeat = 30 * time.Second
	// StatusStaleAfter is how old a status entry may be before readers
	// (`sluice rollout`) treat its agent as gone.
	StatusStaleAfter = 3 * StatusHeartbeat
	// statusTTL is the status bucket's max age when the agent creates it:
	// entries of agents that went away disappear.
	statusTTL = 10 * time.Minute
	// controlHistory is how many values per key the control bucket keeps
	// when created, for `sluice rollout undo`.
	controlHistory = 16
	// controlOpTimeout bounds one request to the control bucket.
	controlOpTimeout = 10 * time.Second
)

// ControlKey is the control bucket key of a stage: "<stage>" for every
// agent, or "<group>.<stage>" for the agents of a group, which wins over
// the first for them.
func ControlKey(group, stage string) string {
	if group == "" {
		return stage
	}
	return group + "." + stage
}

// StatusKey is the status bucket key of an agent's stage:
// "<stage>.<agent>", the agent's name escaped so that it is one key token
// (escapeKeyToken).
func StatusKey(stage, agent string) string { return stage + "." + escapeKeyToken(agent) }

// escapeKeyToken makes s one NATS KV key token, reversibly: every byte
// other than a letter, digit, '_' or '-' becomes "=XX" (hex), so that
// "node-a.example.com" is "node-a=2Eexample=2Ecom".
func escapeKeyToken(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

// StatusRecord is the value of a status bucket entry: one agent's stage.
type StatusRecord struct {
	Agent string `json:"agent"`
	Group string `json:"group,omitempty"`
	StageStatus
	// Updated is when the agent wrote the entry.
	Updated time.Time `json:"updated"`
}

// ControlConnectOptions are the nats.Options of a connection to the
// control buckets: the block's authentication and TLS, named name.
func ControlConnectOptions(cfg *config.ControlNATS, name string) ([]nats.Option, error) {
	// The sink's options carry the one implementation of NATS
	// authentication and TLS that the sink and `sluice subscribe` use too.
	a := cfg.NATSAuth
	auth, err := sinks.NATSOptions{User: a.User, Password: a.Password, Token: a.Token, NKeySeedFile: a.NKeySeedFile, CredsFile: a.CredsFile,
		CAFile: a.CAFile, CertFile: a.CertFile, KeyFile: a.KeyFile}.ClientOptions()
	if err != nil {
		return nil, fmt.Errorf("control connection: %w", err)
	}
	return append([]nats.Option{nats.Name(name), nats.Timeout(5 * time.Second)}, auth...), nil
}

// OpenControlBuckets binds the control and status buckets cfg names,
// creating each that is missing (with cfg.Replicas; the control bucket
// keeps a history for undo, the status bucket forgets agents that went
// away).
func OpenControlBuckets(ctx context.Context, js jetstream.JetStream, cfg *config.ControlNATS) (control, status jetstream.KeyValue, err error) {
	control, err = bindBucket(ctx, js, jetstream.KeyValueConfig{Bucket: cfg.Bucket, History: controlHistory, Replicas: cfg.Replicas,
		Description: "sluice: the version each stage must run (key <stage> or <group>.<stage>)"})
	if err != nil {
		return nil, nil, err
	}
	status, err = bindBucket(ctx, js, jetstream.KeyValueConfig{Bucket: cfg.StatusBucket, History: 1, TTL: statusTTL, Replicas: cfg.Replicas,
		Description: "sluice: what each agent's stages run (key <stage>.<agent>)"})
	if err != nil {
		return nil, nil, err
	}
	return control, status, nil
}

func bindBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open KV bucket %q: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// controlClient connects the agent's stage followers to the control
// buckets. It is owned by the goroutine that calls run; markDirty, forget,
// rewatch and stop may be called from any goroutine.
type controlClient struct {
	cfg       *config.ControlNATS
	agent     string
	group     string
	followers *stageFollowers
	log       *slog.Logger

	connected chan struct{} // cap 1: (re)connected, watch again
	restart   chan struct{} // cap 1: the stages changed, watch their keys
	quit      chan struct{} // closed by stop
	quitOnce  sync.Once

	mu        sync.Mutex
	dirty     map[string]bool // stages whose status changed since published
	forgotten map[string]bool // stages that are gone: delete their entries
	kick      chan struct{}   // cap 1: dirty or forgotten is not empty
}

func newControlClient(a config.Agent, followers *stageFollowers, log *slog.Logger) *controlClient {
	return &controlClient{
		cfg: embeddedControlAuth(a), agent: a.Name, group: a.Group, followers: followers, log: log.With("control", a.Control.NATS.Bucket),
		connected: make(chan struct{}, 1), restart: make(chan struct{}, 1), quit: make(chan struct{}),
		dirty: map[string]bool{}, forgotten: map[string]bool{}, kick: make(chan struct{}, 1),
	}
}

// forget deletes the status entry of a stage that is gone (a reload
// removed it).
func (c *controlClient) forget(stage string) {
	c.mu.Lock()
	c.forgotten[stage] = true
	delete(c.dirty, stage)
	c.mu.Unlock()
	poke(c.kick)
}

// rewatch makes the session watch the keys of the stages there are now.
func (c *controlClient) rewatch() { poke(c.restart) }

// stop ends run, which withdraws the agent's status entries.
func (c *controlClient) stop() { c.quitOnce.Do(func() { close(c.quit) }) }

func (c *controlClient) markDirty(stage string) {
	c.mu.Lock()
	c.dirty[stage] = true
	c.mu.Unlock()
	poke(c.kick)
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run keeps the control connection until ctx is done. A bus that is down
// changes nothing that runs: the stages keep their versions (an agent
// started during an outage runs its config) and catch up once it is back.
func (c *controlClient) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	opts, err := ControlConnectOptions(c.cfg, "sluice control "+c.agent)
	if err == nil {
		opts = append(opts,
			nats.MaxReconnects(-1),
			nats.ReconnectWait(250*time.Millisecond),
			nats.RetryOnFailedConnect(true),
			nats.ConnectHandler(func(*nats.Conn) { poke(c.connected) }),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				c.log.Info("control connection back", "server", nc.ConnectedUrlRedacted())
				poke(c.connected)
			}),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					c.log.Warn("control connection lost; stages keep the versions they run", "error", err)
				}
			}),
		)
	}
	var nc *nats.Conn
	if err == nil {
		nc, err = nats.Connect(c.cfg.URL, opts...)
	}
	if err != nil {
		// Only unusable settings (a missing creds file) get here: with
		// RetryOnFailedConnect an unreachable server is retried.
		c.log.Error("cannot use the control connection; stages follow the config alone", "error", err)
		return
	}
	defer func() {
		c.withdraw(nc)
		nc.Close()
	}()
	var lastErr string
	backoff := 250 * time.Millisecond
	for {
		established, err := c.session(ctx, nc)
		if ctx.Err() != nil {
			return
		}
		if established {
			backoff = 250 * time.Millisecond
		}
		if errors.Is(err, errRestart) {
			continue // at once
		}
		if err != nil && !errors.Is(err, errReconnected) && err.Error() != lastErr {
			lastErr = err.Error()
			c.log.Warn("control bucket unavailable; stages keep the versions they run and retry", "error", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-c.connected:
			t.Stop()
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// errReconnected and errRestart end a session to watch afresh: after a
// reconnection, or when a reload changed the stages.
var (
	errReconnected = errors.New("reconnected")
	errRestart     = errors.New("the stages changed")
)

// session binds the buckets, watches the stages' keys and publishes their
// status until the connection drops or ctx is done. It reports whether
// the watch was established.
func (c *controlClient) session(ctx context.Context, nc *nats.Conn) (bool, error) {
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			return false, nil
		case <-c.connected:
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return false, err
	}
	octx, cancel := context.WithTimeout(ctx, controlOpTimeout)
	control, status, err := OpenControlBuckets(octx, js, c.cfg)
	cancel()
	if err != nil {
		return false, err
	}
	followers := c.followers.list()
	var keys []string
	for _, f := range followers {
		keys = append(keys, ControlKey("", f.name))
		if c.group != "" {
			keys = append(keys, ControlKey(c.group, f.name))
		}
	}
	if len(keys) == 0 {
		// No stage: nothing to watch until a reload brings one.
		select {
		case <-ctx.Done():
			return false, nil
		case <-c.restart:
			return false, errRestart
		}
	}
	// The watch starts now, connected: a (re)connection signalled before
	// it is no reason to start over.
	select {
	case <-c.connected:
	default:
	}
	select {
	case <-c.restart:
	default:
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	w, err := control.WatchFiltered(wctx, keys)
	if err != nil {
		return false, fmt.Errorf("watch KV bucket %q: %w", c.cfg.Bucket, err)
	}
	defer w.Stop()
	// A (re)connection may have missed changes: watch from scratch, and
	// apply the stages' values once the current ones are in.
	entries := map[string]jetstream.KeyValueEntry{}
	initial := true
	for _, f := range followers {
		c.markDirty(f.name)
	}
	heartbeat := time.NewTicker(StatusHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-c.connected:
			return true, errReconnected
		case <-c.restart:
			return true, errRestart
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return true, fmt.Errorf("watch of KV bucket %q ended", c.cfg.Bucket)
			case e == nil:
				initial = false
				for _, f := range followers {
					c.apply(f, entries)
				}
				continue
			case e.Operation() == jetstream.KeyValuePut:
				entries[e.Key()] = e
			default:
				delete(entries, e.Key())
			}
			if !initial {
				if f := c.followers.get(e.Key()[strings.LastIndex(e.Key(), ".")+1:]); f != nil {
					c.apply(f, entries)
				}
			}
		case <-c.kick:
			if err := c.publish(ctx, status, false); err != nil {
				return true, err
			}
		case <-heartbeat.C:
			if err := c.publish(ctx, status, true); err != nil {
				return true, err
			}
		}
	}
}

// apply hands a follower the value its keys hold: the group's key wins
// over the stage's; none returns the stage to its config.
func (c *controlClient) apply(f *stageFollower, entries map[string]jetstream.KeyValueEntry) {
	e, ok := entries[ControlKey(c.group, f.name)]
	if !ok && c.group != "" {
		e, ok = entries[ControlKey("", f.name)]
	}
	if !ok {
		f.setOverride(nil)
		return
	}
	f.setOverride(f.parseOverride(string(e.Value()), e.Key(), e.Revision()))
}

// publish writes the status of the stages whose status changed (all of
// them with all).
func (c *controlClient) publish(ctx context.Context, status jetstream.KeyValue, all bool) error {
	c.mu.Lock()
	dirty, forgotten := c.dirty, c.forgotten
	c.dirty, c.forgotten = map[string]bool{}, map[string]bool{}
	c.mu.Unlock()
	for stage := range forgotten {
		pctx, cancel := context.WithTimeout(ctx, controlOpTimeout)
		err := status.Delete(pctx, StatusKey(stage, c.agent))
		cancel()
		if err != nil {
			c.forget(stage)
			return fmt.Errorf("delete the status of stage %q: %w", stage, err)
		}
	}
	for _, f := range c.followers.list() {
		if !all && !dirty[f.name] {
			continue
		}
		rec := StatusRecord{Agent: c.agent, Group: c.group, StageStatus: f.Status(), Updated: time.Now().UTC()}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, controlOpTimeout)
		_, err = status.Put(pctx, StatusKey(f.name, c.agent), b)
		cancel()
		if err != nil {
			c.markDirty(f.name)
			return fmt.Errorf("publish the status of stage %q: %w", f.name, err)
		}
	}
	return nil
}

// withdraw deletes the agent's status entries when it stops, so that
// readers do not wait for an agent that is gone; an agent that cannot
// reach the bus leaves them to expire.
func (c *controlClient) withdraw(nc *nats.Conn) {
	if !nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	status, err := js.KeyValue(ctx, c.cfg.StatusBucket)
	if err != nil {
		return
	}
	for _, f := range c.followers.list() {
		_ = status.Delete(ctx, StatusKey(f.name, c.agent))
	}
}
