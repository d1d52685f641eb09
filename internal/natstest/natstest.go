// Package natstest runs real NATS servers (nats-server/v2, in-process) on
// loopback for tests: a single server, or a cluster of servers joined by
// routes with clustered JetStream, whose nodes can be killed and restarted
// on the same ports and storage. Servers are owned by the test that starts
// them and stop at its cleanup.
package natstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StartServer runs one server with JetStream on a free loopback port, as a
// Cluster of one node (no routes) so that it can be killed and restarted.
// With start false it is created killed: its URL refuses connections until
// Restart.
func StartServer(t testing.TB, start bool) *Cluster {
	t.Helper()
	c := &Cluster{nodes: []*node{{opts: &server.Options{
		ServerName: "n1", Host: "127.0.0.1", Port: freePorts(t, 1)[0], JetStream: true, StoreDir: t.TempDir(),
	}}}}
	t.Cleanup(c.shutdown)
	if start {
		c.Restart(t, 0)
	}
	return c
}

func start(opts *server.Options) (*server.Server, error) {
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server %s did not start", opts.ServerName)
	}
	return s, nil
}

// Cluster is a set of servers joined by routes, with clustered JetStream.
type Cluster struct {
	mu    sync.Mutex
	nodes []*node
}

type node struct {
	opts *server.Options
	srv  *server.Server // nil while killed
}

// StartCluster runs n servers (three for JetStream's quorum) in one
// cluster and waits until JetStream has a leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	clients, routes := freePorts(t, n), freePorts(t, n)
	var routeURLs []string
	for _, p := range routes {
		routeURLs = append(routeURLs, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       clients[i],
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster:    server.ClusterOpts{Name: "sluice-test", Host: "127.0.0.1", Port: routes[i]},
			Routes:     server.RoutesFromStr(strings.Join(routeURLs, ",")),
		}
		c.nodes = append(c.nodes, &node{opts: opts})
	}
	// Start them together: each waits for the routes to the others.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, nd := range c.nodes {
		wg.Go(func() { nd.srv, errs[i] = start(cloneOpts(nd.opts)) })
	}
	wg.Wait()
	t.Cleanup(c.shutdown)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c.WaitJetStream(t)
	return c
}

func cloneOpts(o *server.Options) *server.Options {
	c := o.Clone()
	c.Routes = o.Routes
	return c
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// URLs is the client URL list of every node, as a NATS client takes it.
func (c *Cluster) URLs() string {
	var urls []string
	for _, nd := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nd.opts.Port))
	}
	return strings.Join(urls, ",")
}

// URL is node i's client URL.
func (c *Cluster) URL(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", c.nodes[i].opts.Port) }

// Kill shuts node i down, as a crash would (its clients and routes drop).
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	s := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts a killed node i again on its ports and storage, and
// waits until JetStream answers again.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	s, err := start(cloneOpts(c.nodes[i].opts))
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[i].srv = s
	c.mu.Unlock()
	c.WaitJetStream(t)
}

// WaitJetStream waits until a client of the cluster gets an answer from
// JetStream (a meta leader is elected).
func (c *Cluster) WaitJetStream(t testing.TB) {
	t.Helper()
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster's JetStream did not answer within a minute: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) shutdown() {
	for i := range c.nodes {
		c.Kill(i)
	}
}

// StreamMessages reads every message stream holds on the server at url, in
// stream order, through an ordered consumer. It fails the test when the
// stream cannot be read whole within timeout.
func StreamMessages(t testing.TB, url, stream string, timeout time.Duration) []jetstream.Msg {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("read stream %s: %v", stream, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("read stream %s: %v", stream, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("read stream %s: %v", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("read stream %s: %v", stream, err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("read stream %s: %v", stream, err)
	}
	var out []jetstream.Msg
	for uint64(len(out)) < info.State.Msgs {
		batch, err := cons.Fetch(int(min(1000, info.State.Msgs-uint64(len(out)))), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("read stream %s: %v", stream, err)
		}
		n := len(out)
		for m := range batch.Messages() {
			out = append(out, m)
		}
		if len(out) == n && ctx.Err() != nil {
			t.Fatalf("read stream %s: read %d of %d messages in %v", stream, n, info.State.Msgs, timeout)
		}
	}
	return out
}
