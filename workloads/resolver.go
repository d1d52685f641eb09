package workloads

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/pipeline"
)

// Defaults for the zero values of Options.
const (
	DefaultMinInterval = 100 * time.Millisecond
	DefaultResync      = 30 * time.Second
	DefaultLinger      = 30 * time.Second
)

// Options configure a Resolver.
type Options struct {
	Runtimes []Runtime
	// MinInterval is the shortest time between two refresh rounds.
	MinInterval time.Duration
	// Resync is how often the container list is refreshed when nothing
	// asks for it, and how long a namespace found to belong to no
	// container is believed when no container starts meanwhile.
	Resync time.Duration
	// Linger keeps a stopped container's namespaces resolvable for a
	// while, for its last events still on their way through a pipeline.
	Linger time.Duration
	// ProcRoot is where /proc is ("" = /proc); CgroupRoot where cgroup v2
	// is mounted ("" = found from mountinfo).
	ProcRoot, CgroupRoot string
	Logger               *slog.Logger
	// Metrics receives the resolver's counters; nil: a private registry.
	Metrics *pipeline.Registry
}

// Resolver maps mount namespaces to containers; see the package doc.
type Resolver struct {
	opts Options
	proc *procFS
	log  *slog.Logger

	snap atomic.Pointer[snapshot]

	mu         sync.Mutex
	pending    map[uint64]int // namespace -> a pid in it (0: none known)
	next       *round         // answered by the next refresh round
	dirty      bool           // a runtime event or a resync wants a new list
	reinspect  map[string]bool
	subs       []func([]*Container, uint64)
	wake       chan struct{}
	refreshing sync.Mutex // one round at a time (Run's loop, Refresh)

	// Owned by the round holding refreshing.
	runtimes  []*runtimeState
	gone      map[string]goneContainer
	extra     map[uint64]string // namespace -> container id, found through a process's cgroup
	hostNS    map[uint64]bool
	lastList  time.Time
	lastRound time.Time
	// listFailed: a runtime did not answer the last list, so its
	// containers may be missing or stale until it is asked again.
	listFailed bool

	refreshes *pipeline.Counter
	errors    *pipeline.Counter
	live      *pipeline.Gauge
}

type snapshot struct {
	gen     uint64
	byMntNS map[uint64]*Container
	none    map[uint64]bool
	live    []*Container
}

type round struct{ done chan struct{} }

type goneContainer struct {
	c  *Container
	at time.Time
}

type runtimeState struct {
	rt        Runtime
	name      string
	inspected map[string]RuntimeContainer
	last      []*Container // the last list that succeeded
	lim       pipeline.LogLimiter
}

// NewResolver returns a resolver over the given runtimes. Nothing runs
// until Run; lookups answer "unknown" until the first round.
func NewResolver(opts Options) *Resolver {
	opts.MinInterval = cmp.Or(opts.MinInterval, DefaultMinInterval)
	opts.Resync = cmp.Or(opts.Resync, DefaultResync)
	opts.Linger = cmp.Or(opts.Linger, DefaultLinger)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = pipeline.NewRegistry()
	}
	r := &Resolver{
		opts:      opts,
		proc:      newProcFS(opts.ProcRoot, opts.CgroupRoot),
		log:       opts.Logger,
		pending:   map[uint64]int{},
		reinspect: map[string]bool{},
		wake:      make(chan struct{}, 1),
		gone:      map[string]goneContainer{},
		extra:     map[uint64]string{},
		hostNS:    map[uint64]bool{},
		refreshes: opts.Metrics.Counter("sluice_workload_refreshes_total", "Rounds of container resolution (runtime queries)"),
		errors:    opts.Metrics.Counter("sluice_workload_runtime_errors_total", "Failed queries of container runtimes"),
		live:      opts.Metrics.Gauge("sluice_workload_containers", "Containers the resolver knows as running"),
	}
	for _, rt := range opts.Runtimes {
		r.runtimes = append(r.runtimes, &runtimeState{rt: rt, inspected: map[string]RuntimeContainer{}})
	}
	// The host's own namespaces are known without asking anyone.
	for _, pid := range []int{1, os.Getpid()} {
		if ns, err := r.proc.mntNS(pid); err == nil {
			r.hostNS[ns] = true
		}
	}
	r.snap.Store(&snapshot{byMntNS: map[uint64]*Container{}, none: cloneSet(r.hostNS)})
	return r
}

// Lookup returns the container owning mount namespace ns. known is false
// when the resolver cannot tell yet (see Request); a known namespace with
// a nil container belongs to no container. It never blocks and is safe
// for concurrent use.
func (r *Resolver) Lookup(ns uint64) (c *Container, known bool) {
	s := r.snap.Load()
	if c := s.byMntNS[ns]; c != nil {
		return c, true
	}
	return nil, s.none[ns]
}

// Request queues an unknown namespace for the next round, with a pid
// known to be in it (0 if none), and returns a channel closed when that
// round is over (answered or not). Safe for concurrent use.
func (r *Resolver) Request(ns uint64, pid int) <-chan struct{} {
	r.mu.Lock()
	if old, ok := r.pending[ns]; !ok || old == 0 {
		r.pending[ns] = pid
	}
	if r.next == nil {
		r.next = &round{done: make(chan struct{})}
	}
	done := r.next.done
	r.mu.Unlock()
	r.signal()
	return done
}

func (r *Resolver) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Containers returns the running containers as of the last round, and
// that round's generation (which grows with every round). Safe for
// concurrent use.
func (r *Resolver) Containers() ([]*Container, uint64) {
	s := r.snap.Load()
	return s.live, s.gen
}

// Subscribe registers fn, called from the resolver's goroutine with the
// running containers and the round's generation after every round in
// which they changed. fn must return quickly.
func (r *Resolver) Subscribe(fn func(live []*Container, gen uint64)) {
	r.mu.Lock()
	r.subs = append(r.subs, fn)
	r.mu.Unlock()
}

// Run refreshes when asked (Request), when a runtime reports a container
// event, and every Resync, until ctx is cancelled; it then returns nil.
func (r *Resolver) Run(ctx context.Context) error {
	var g errgroup.Group
	for _, rs := range r.runtimes {
		g.Go(func() error { r.watch(ctx, rs); return nil })
	}
	g.Go(func() error { r.loop(ctx); return nil })
	return g.Wait()
}

func (r *Resolver) loop(ctx context.Context) {
	resync := time.NewTicker(r.opts.Resync)
	defer resync.Stop()
	// A runtime that did not answer a list is asked again after a delay
	// growing from retryFirst to Resync: a container filter learns the
	// containers only from lists, so waiting for the next resync would
	// leave a container's events filtered out for up to Resync after a
	// runtime was slow once (a loaded host, a restarting daemon).
	const retryFirst = 250 * time.Millisecond
	retryIn := retryFirst
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			r.answerWaiters()
			return
		case <-r.wake:
		case <-retry.C:
		case <-resync.C:
			r.mu.Lock()
			r.dirty = true
			r.mu.Unlock()
		}
		if wait := time.Until(r.lastRound.Add(r.opts.MinInterval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				r.answerWaiters()
				return
			case <-t.C:
			}
		}
		if failed, _ := r.refresh(ctx); !failed {
			retryIn = retryFirst
			continue
		}
		retry.Reset(retryIn)
		retryIn = min(2*retryIn, r.opts.Resync)
	}
}

// answerWaiters releases whoever waits for a round that will not come.
func (r *Resolver) answerWaiters() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next != nil {
		close(r.next.done)
		r.next = nil
	}
}

// watch follows one runtime's events, reconnecting with a growing delay.
func (r *Resolver) watch(ctx context.Context, rs *runtimeState) {
	backoff := time.Second
	for {
		start := time.Now()
		err := rs.rt.Watch(ctx, func(id string) {
			r.mu.Lock()
			r.dirty = true
			if id != "" {
				r.reinspect[id] = true
			}
			r.mu.Unlock()
			r.signal()
		})
		if ctx.Err() != nil {
			return
		}
		r.errors.Inc()
		if ok, suppressed := rs.lim.Allow(time.Now()); ok {
			r.log.Warn("container runtime events stopped; retrying", "runtime", rs.rt.Endpoint(), "error", err, "retry_in", backoff, "suppressed", suppressed)
		}
		// Events may have been missed: list again.
		r.mu.Lock()
		r.dirty = true
		r.mu.Unlock()
		r.signal()
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// Refresh runs one round now: it answers the queued namespaces and, when
// due, lists the runtimes' containers again. Errors of single runtimes
// are logged and counted; the returned error says that no runtime
// answered at all. Run calls it; call it directly to have containers
// known before events flow. Safe for concurrent use (rounds serialise).
func (r *Resolver) Refresh(ctx context.Context) error {
	failed, err := r.refresh(ctx)
	if failed {
		r.signal() // Run's loop retries, with a backoff if it fails again
	}
	return err
}

// refresh is Refresh; failed says that a runtime did not answer the list.
func (r *Resolver) refresh(ctx context.Context) (failed bool, err error) {
	r.refreshing.Lock()
	defer r.refreshing.Unlock()
	defer func() { failed = r.listFailed }()
	r.refreshes.Inc()
	now := time.Now()
	r.lastRound = now

	r.mu.Lock()
	pending := r.pending
	r.pending = map[uint64]int{}
	rd := r.next
	r.next = nil
	dirty := r.dirty
	r.dirty = false
	reinspect := r.reinspect
	r.reinspect = map[string]bool{}
	r.mu.Unlock()
	if rd != nil {
		defer close(rd.done)
	}

	old := r.snap.Load()
	unknown := 0
	for ns := range pending {
		if _, known := r.lookupIn(old, ns); !known {
			unknown++
		}
	}
	var listErr error
	resync := now.Sub(r.lastList) >= r.opts.Resync
	listed := dirty || unknown > 0 || resync || r.lastList.IsZero()
	if listed {
		listErr = r.list(ctx, reinspect)
		r.lastList = now
		if r.listFailed {
			// Whatever this list was asked for is still owed: the loop
			// asks again after a backoff, with the same reinspections.
			r.mu.Lock()
			r.dirty = true
			for id := range reinspect {
				r.reinspect[id] = true
			}
			r.mu.Unlock()
		}
	}

	live := r.liveContainers()
	byID := make(map[string]*Container, len(live))
	for _, c := range live {
		byID[c.ID] = c
	}
	// Containers that left since the last round linger for a while.
	for _, c := range old.live {
		if byID[c.ID] == nil {
			if _, ok := r.gone[c.ID]; !ok {
				r.gone[c.ID] = goneContainer{c: c, at: now}
			}
		}
	}
	for id, g := range r.gone {
		if byID[id] != nil || now.Sub(g.at) > r.opts.Linger {
			delete(r.gone, id)
		}
	}
	next := &snapshot{gen: old.gen + 1, byMntNS: map[uint64]*Container{}, live: live}
	for _, g := range r.gone {
		next.byMntNS[g.c.MntNS] = g.c
	}
	for _, c := range live {
		next.byMntNS[c.MntNS] = c
	}
	for ns, id := range r.extra {
		c := byID[id]
		if c == nil {
			if g, ok := r.gone[id]; ok {
				c = g.c
			}
		}
		if c == nil {
			delete(r.extra, ns)
			continue
		}
		if next.byMntNS[ns] == nil {
			next.byMntNS[ns] = c
		}
	}
	// What was known to be no container's stays so until a runtime event
	// or a resync says containers changed.
	if dirty || resync {
		next.none = cloneSet(r.hostNS)
	} else {
		next.none = cloneSet(old.none)
	}
	for ns, pid := range pending {
		if next.byMntNS[ns] != nil || next.none[ns] {
			continue
		}
		if c := r.throughProcess(ctx, ns, pid, byID); c != nil {
			next.byMntNS[ns] = c
			r.extra[ns] = c.ID
			continue
		}
		next.none[ns] = true
	}
	r.snap.Store(next)
	r.live.Set(int64(len(live)))
	if changed(old.live, live) {
		r.mu.Lock()
		subs := slices.Clone(r.subs)
		r.mu.Unlock()
		for _, fn := range subs {
			fn(live, next.gen)
		}
	}
	return false, listErr // failed is set by the deferred function
}

func (r *Resolver) lookupIn(s *snapshot, ns uint64) (*Container, bool) {
	if c := s.byMntNS[ns]; c != nil {
		return c, true
	}
	return nil, s.none[ns]
}

// list asks every runtime for its containers, inspecting only those it
// has not inspected yet (or that an event named).
func (r *Resolver) list(ctx context.Context, reinspect map[string]bool) error {
	var errs []error
	answered := false
	r.listFailed = false
	for _, rs := range r.runtimes {
		cs, err := r.listOne(ctx, rs, reinspect)
		if err != nil {
			r.listFailed = true
			r.errors.Inc()
			errs = append(errs, err)
			if ok, suppressed := rs.lim.Allow(time.Now()); ok {
				r.log.Warn("list containers", "runtime", rs.rt.Endpoint(), "error", err, "suppressed", suppressed)
			}
			continue
		}
		answered = true
		rs.last = cs
	}
	if answered || len(r.runtimes) == 0 {
		return nil
	}
	return fmt.Errorf("list containers: %w", errors.Join(errs...))
}

func (r *Resolver) listOne(ctx context.Context, rs *runtimeState, reinspect map[string]bool) ([]*Container, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*requestTimeout)
	defer cancel()
	if rs.name == "" {
		name, err := rs.rt.Name(ctx)
		if err != nil {
			return nil, err
		}
		rs.name = name
	}
	ids, err := listIDs(ctx, rs.rt)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []*Container
	for _, id := range ids {
		seen[id] = true
		rc, ok := rs.inspected[id]
		if !ok || reinspect[id] || reinspectByPrefix(reinspect, id) {
			rc, err = rs.rt.Inspect(ctx, id)
			if errors.Is(err, ErrNoContainer) {
				continue
			}
			if err != nil {
				return nil, err
			}
			rs.inspected[id] = rc
		}
		if rc.PID <= 0 {
			continue
		}
		c, err := r.resolveProcess(rc, rs.name)
		if err != nil {
			// The process went away between the answer and now: the
			// container is stopping, or restarting with a new pid. Or the
			// agent may not read other users' /proc/PID/ns: say so.
			if errors.Is(err, os.ErrPermission) {
				if ok, suppressed := rs.lim.Allow(time.Now()); ok {
					r.log.Warn("cannot read a container's namespace; run as root or with CAP_SYS_PTRACE", "container", rc.Name, "error", err, "suppressed", suppressed)
				}
			}
			delete(rs.inspected, id)
			continue
		}
		out = append(out, c)
	}
	for id := range rs.inspected {
		if !seen[id] {
			delete(rs.inspected, id)
		}
	}
	return out, nil
}

// listIDs lists container ids; runtimes that list full descriptions are
// asked through Containers, which DockerAPI answers from its list.
func listIDs(ctx context.Context, rt Runtime) ([]string, error) {
	if l, ok := rt.(interface {
		ContainerIDs(context.Context) ([]string, error)
	}); ok {
		return l.ContainerIDs(ctx)
	}
	cs, err := rt.Containers(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids, nil
}

func reinspectByPrefix(reinspect map[string]bool, id string) bool {
	for p := range reinspect {
		if len(p) >= 12 && strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// resolveProcess completes a runtime's description with what /proc says
// about the container's first process.
func (r *Resolver) resolveProcess(rc RuntimeContainer, runtime string) (*Container, error) {
	ns, err := r.proc.mntNS(rc.PID)
	if err != nil {
		return nil, err
	}
	c := newContainer(rc, runtime)
	c.MntNS = ns
	if path, err := r.proc.cgroupPath(rc.PID); err == nil {
		c.CgroupID, _ = r.proc.cgroupID(path)
	}
	return c, nil
}

// throughProcess resolves a namespace no listed container owns through a
// process in it: the container its cgroup names, listed or inspected now.
func (r *Resolver) throughProcess(ctx context.Context, ns uint64, pid int, byID map[string]*Container) *Container {
	if pid <= 0 {
		return nil
	}
	if got, err := r.proc.mntNS(pid); err != nil || got != ns {
		return nil // gone, or not in that namespace any more
	}
	path, err := r.proc.cgroupPath(pid)
	if err != nil {
		return nil
	}
	id := containerIDFromCgroup(path)
	if id == "" {
		return nil
	}
	if c := byID[id]; c != nil {
		return c
	}
	// A container that started after the list: ask its runtime.
	for _, rs := range r.runtimes {
		ictx, cancel := context.WithTimeout(ctx, requestTimeout)
		rc, err := rs.rt.Inspect(ictx, id)
		cancel()
		if err != nil || rc.PID <= 0 || rs.name == "" {
			continue
		}
		c, err := r.resolveProcess(rc, rs.name)
		if err != nil {
			continue
		}
		rs.inspected[rc.ID] = rc
		rs.last = append(rs.last, c)
		return c
	}
	return nil
}

func (r *Resolver) liveContainers() []*Container {
	var out []*Container
	for _, rs := range r.runtimes {
		out = append(out, rs.last...)
	}
	slices.SortFunc(out, func(a, b *Container) int { return strings.Compare(a.ID, b.ID) })
	return slices.CompactFunc(out, func(a, b *Container) bool { return a.ID == b.ID })
}

// changed reports whether two sorted container lists differ in the
// containers or their namespaces.
func changed(a, b []*Container) bool {
	return !slices.EqualFunc(a, b, func(x, y *Container) bool { return x.ID == y.ID && x.MntNS == y.MntNS })
}

func cloneSet(m map[uint64]bool) map[uint64]bool {
	out := make(map[uint64]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
