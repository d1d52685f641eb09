package workloads

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/podmantest"
	"github.com/sluice-dev/sluice/pipeline"
)

func TestMain(m *testing.M) {
	code := m.Run()
	podmantest.Stop()
	os.Exit(code)
}

// uniqueName names a container apart from those of other runs.
func uniqueName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, rand.Uint32()) }

func mntNSOf(t *testing.T, pid int) uint64 {
	t.Helper()
	ns, err := newProcFS("", "").mntNS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// startResolver runs a resolver over the test Podman until the test ends.
func startResolver(t *testing.T, p *podmantest.Podman, opts Options) *Resolver {
	t.Helper()
	opts.Runtimes = []Runtime{NewDockerAPI(p.Socket)}
	r := NewResolver(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("resolver run: %v", err)
		}
	})
	return r
}

func TestResolverPodman(t *testing.T) {
	p := podmantest.Start(t)
	name := uniqueName("web")
	c := p.RunContainer(t, name, []string{
		"--label", "io.kubernetes.pod.namespace=shop",
		"--label", "io.kubernetes.pod.name=web-7d4f",
		"--label", "io.kubernetes.container.name=nginx",
	})
	r := startResolver(t, p, Options{})
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	ns := mntNSOf(t, c.PID)
	got, known := r.Lookup(ns)
	if !known || got == nil {
		t.Fatalf("Lookup(container's namespace %d) = %v, %v; want the container", ns, got, known)
	}
	want := map[string]string{
		"id": c.ID, "name": name, "image": podmantest.Image, "runtime": "podman",
		"k8s.namespace": "shop", "k8s.pod": "web-7d4f", "k8s.container": "nginx",
	}
	gotFields := map[string]string{
		"id": got.ID, "name": got.Name, "image": got.Image, "runtime": got.Runtime,
		"k8s.namespace": got.K8sNamespace, "k8s.pod": got.K8sPod, "k8s.container": got.K8sContainer,
	}
	if diff := cmp.Diff(want, gotFields); diff != "" {
		t.Errorf("resolved container (-want +got):\n%s", diff)
	}
	if got.PID != c.PID || got.CgroupID == 0 {
		t.Errorf("pid %d cgroup id %d, want pid %d and a cgroup", got.PID, got.CgroupID, c.PID)
	}

	// The host's namespace is known to be no container's from the start.
	if c, known := r.Lookup(mntNSOf(t, os.Getpid())); c != nil || !known {
		t.Errorf("Lookup(host namespace) = %v, %v; want nil, true", c, known)
	}
	live, _ := r.Containers()
	if len(live) != 1 || live[0].ID != c.ID {
		t.Errorf("Containers() = %v, want the one container", live)
	}
}

// TestResolverFollowsContainers: containers started and stopped after the
// first round reach subscribers through the runtime's event stream.
func TestResolverFollowsContainers(t *testing.T) {
	p := podmantest.Start(t)
	r := startResolver(t, p, Options{Linger: time.Millisecond})
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []*Container
	r.Subscribe(func(live []*Container, _ uint64) {
		mu.Lock()
		seen = live
		mu.Unlock()
	})
	has := func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range seen {
			if c.ID == id {
				return true
			}
		}
		return false
	}
	c := p.RunContainer(t, uniqueName("late"), nil)
	waitUntil(t, "the started container to reach the subscriber", func() bool { return has(c.ID) })
	if got, _ := r.Lookup(mntNSOf(t, c.PID)); got == nil || got.ID != c.ID {
		t.Errorf("Lookup(the started container's namespace) = %v, want container %s", got, c.ID)
	}

	if _, err := p.Run(context.Background(), "rm", "-f", "-t", "0", c.ID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the removed container to leave the subscriber's list", func() bool { return !has(c.ID) })
}

// failingLists is a real runtime whose first lists fail, as a runtime
// that is slow under load fails them by the request timeout; it reports
// no events, so that only a retry can bring the container in.
type failingLists struct {
	Runtime
	mu    sync.Mutex
	fails int // lists still to fail
	calls int
}

func (f *failingLists) Containers(ctx context.Context) ([]RuntimeContainer, error) {
	f.mu.Lock()
	f.calls++
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("list: %w", context.DeadlineExceeded)
	}
	return f.Runtime.Containers(ctx)
}

func (f *failingLists) Watch(ctx context.Context, _ func(string)) error {
	<-ctx.Done()
	return nil
}

// TestResolverRetriesFailedList: a list that fails is retried without
// waiting for a runtime event or the resync, so a container filter does
// not lose a container's events for a resync period because the runtime
// was slow once (CI lost TestAgentContainerFilter's container that way).
func TestResolverRetriesFailedList(t *testing.T) {
	p := podmantest.Start(t)
	c := p.RunContainer(t, uniqueName("retry"), nil)
	rt := &failingLists{Runtime: NewDockerAPI(p.Socket), fails: 3}
	r := NewResolver(Options{Runtimes: []Runtime{rt}, Resync: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("resolver run: %v", err)
		}
	}()

	if err := r.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh with a runtime failing its list: no error")
	}
	ns := mntNSOf(t, c.PID)
	waitUntil(t, "the container after the failed lists", func() bool {
		got, _ := r.Lookup(ns)
		return got != nil && got.ID == c.ID
	})
	rt.mu.Lock()
	calls := rt.calls
	rt.mu.Unlock()
	if calls != 4 {
		t.Errorf("%d lists, want 4 (three failed, then one answered)", calls)
	}
}

// TestResolverThroughCgroup: a namespace that no listed container owns is
// attributed through a process in it whose cgroup names a container.
func TestResolverThroughCgroup(t *testing.T) {
	p := podmantest.Start(t)
	c := p.RunContainer(t, uniqueName("unshared"), []string{"--cap-add", "SYS_ADMIN"},
		"sh", "-c", "unshare -m sleep 3600 & sleep 3600")
	r := startResolver(t, p, Options{})
	var child int
	waitUntil(t, "the unshared process", func() bool {
		child = childOf(c.PID)
		return child > 0 && mntNSOf(t, child) != mntNSOf(t, c.PID)
	})
	ns := mntNSOf(t, child)
	<-r.Request(ns, child)
	got, known := r.Lookup(ns)
	if got == nil || got.ID != c.ID {
		t.Fatalf("Lookup(unshared namespace) = %v, %v; want container %s", got, known, c.ID)
	}
	// Without a process to go by, an unknown namespace is no container's.
	<-r.Request(ns+1000000, 0)
	if got, known := r.Lookup(ns + 1000000); got != nil || !known {
		t.Errorf("Lookup(namespace without a process) = %v, %v; want nil, true", got, known)
	}
}

// childOf returns the pid of a child of pid, 0 if none.
func childOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	var child int
	fmt.Sscan(string(b), &child)
	return child
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEnricherBoundedWait: a runtime that never answers cannot stall a
// batch longer than the wait bound; the events go out unresolved and
// counted. The runtime is a real socket whose server hangs.
func TestEnricherBoundedWait(t *testing.T) {
	sock := fmt.Sprintf("%s/hang.sock", t.TempDir())
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	defer close(release)

	reg := pipeline.NewRegistry()
	r := NewResolver(Options{Runtimes: []Runtime{NewDockerAPI(sock)}, Metrics: reg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	const wait = 50 * time.Millisecond
	e := NewEnricher("containers", r, wait, reg)
	ev := pipeline.Event{Data: []byte{0x80}, Source: "exec", Seq: 1, MntNS: 4026539999}
	start := time.Now()
	out, err := e.Process(context.Background(), []pipeline.Event{ev, ev}, nil)
	took := time.Since(start)
	if err != nil || len(out) != 2 {
		t.Fatalf("Process = %d events, %v; want both events", len(out), err)
	}
	// The hanging request lasts requestTimeout (seconds); the batch must
	// not wait for it.
	if took >= requestTimeout {
		t.Errorf("the batch waited %v for a runtime that hangs; the bound is %v", took, wait)
	}
	if got := e.unresolved.Value(); got != 2 {
		t.Errorf("unresolved = %d, want 2", got)
	}
	if string(out[0].Data) != string(ev.Data) {
		t.Errorf("an unresolved event changed: % x", out[0].Data)
	}
}
