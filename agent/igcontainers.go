package agent

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/wasmstages"
	"github.com/sluice-dev/sluice/workloads"
)

// What an Inspektor Gadget module of a running source sees of containers:
// shouldDiscardMntnsID answers as the source's mount namespace filter
// decides (filter { containers, mntns }, containers_only), and the
// containers data source reports the containers that filter selects, as
// they start and stop.

// igContainers is one source's view of containers for its IG module.
type igContainers struct {
	filter *sourceFilter // nil: the source has no filter
	g      *sources.Gadget
	ci     *containerIdentity

	mu     sync.Mutex
	gen    uint64 // the resolver round set was computed for
	set    map[uint64]bool
	cached bool
}

// filtersMntNS reports whether the source selects mount namespaces at all.
func (sf *sourceFilter) filtersMntNS() bool {
	return sf != nil && (sf.kernel.ByMntNS || sf.allContainers || len(sf.containerNames) > 0 || len(sf.staticMntNS) > 0)
}

// discard is shouldDiscardMntnsID: whether the source's filter drops the
// events of mount namespace ns. Where the gadget filters in the kernel it
// is the set the kernel holds; where the filter runs on the host it is the
// set that filter stands for (the namespaces it names and those of the
// running containers it selects). A source without such a filter keeps
// every namespace, as IG does without one.
func (c *igContainers) discard(ns uint64) bool {
	if c == nil || !c.filter.filtersMntNS() {
		return false
	}
	if c.filter.kernel.ByMntNS {
		return !c.g.SelectsMntNS(ns)
	}
	if c.hostSelects(ns) {
		return false
	}
	var r *workloads.Resolver
	if c.ci != nil {
		r = c.ci.resolver
	}
	if r == nil {
		return true
	}
	if _, known := r.Lookup(ns); known {
		return true
	}
	// A namespace the resolver has not seen: a container that just
	// started, maybe. The container stage waits for the runtime's answer
	// before the host filter decides; the module waits too, within its
	// call's deadline.
	t := time.NewTimer(min(c.ci.wait, igResolveWait))
	defer t.Stop()
	select {
	case <-r.Request(ns, 0):
	case <-t.C:
	}
	return !c.hostSelects(ns)
}

// igResolveWait bounds the wait for the resolver in discard: a module's
// calls run under a 100 ms deadline by default.
const igResolveWait = 50 * time.Millisecond

// hostSelects reports whether ns is in the namespace set the source's
// host-side filter stands for, recomputed when the containers change.
func (c *igContainers) hostSelects(ns uint64) bool {
	var live []*workloads.Container
	var gen uint64
	if c.ci != nil && c.ci.resolver != nil {
		live, gen = c.ci.resolver.Containers()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cached || gen != c.gen {
		c.set = map[uint64]bool{}
		for _, id := range c.filter.mntNSFor(live) {
			c.set[id] = true
		}
		c.gen, c.cached = gen, true
	}
	return c.set[ns]
}

// selects reports whether the source's filter selects container ct: the
// containers it names, those in the namespaces it names, or every one
// (containers_only, or no container setting).
func (sf *sourceFilter) selects(ct *workloads.Container) bool {
	if sf == nil || sf.allContainers || len(sf.containerNames) == 0 && len(sf.staticMntNS) == 0 {
		return true
	}
	return slices.Contains(sf.containerNames, ct.Name) || slices.Contains(sf.staticMntNS, ct.MntNS)
}

// igContainer is a container as IG's containers data source reports it:
// the Kubernetes container name for a pod's, as IG's Kubernetes mode
// does, else the runtime's. Runtimes' APIs give no OCI configuration.
func igContainer(ct *workloads.Container) wasmstages.IGContainer {
	name := ct.Name
	if ct.K8sContainer != "" {
		name = ct.K8sContainer
	}
	return wasmstages.IGContainer{ID: ct.ID, Name: name, CgroupID: ct.CgroupID, MntNS: ct.MntNS, PID: uint32(ct.PID)}
}

// feedContainers reports the containers the source selects to the module's
// containers data source until ctx ends: the running ones as CREATED,
// then each start (CREATED) and stop (DELETED) the resolver sees. What the
// module emits goes out after each change.
func (s *gadgetSource) feedContainers(ctx context.Context, m *wasmstages.IGModule, out pipeline.Emitter) {
	ci := s.containers.ci
	if ci == nil || ci.resolver == nil {
		s.log.Info("the gadget module subscribes to containers, but the agent resolves none (no container runtime): it gets no container events")
		return
	}
	changed, stop := ci.watch()
	defer stop()
	known := map[string]*workloads.Container{}
	for {
		live, _ := ci.resolver.Containers()
		now := map[string]*workloads.Container{}
		for _, ct := range live {
			if s.containers.filter.selects(ct) {
				now[ct.ID] = ct
			}
		}
		var gone, added []*workloads.Container
		for id, ct := range known {
			if now[id] == nil {
				gone = append(gone, ct)
			}
		}
		for id, ct := range now {
			if known[id] == nil {
				added = append(added, ct)
			}
		}
		byID := func(a, b *workloads.Container) int { return strings.Compare(a.ID, b.ID) }
		slices.SortFunc(gone, byID)
		slices.SortFunc(added, byID)
		for _, evs := range []struct {
			typ string
			cts []*workloads.Container
		}{{wasmstages.IGContainerDeleted, gone}, {wasmstages.IGContainerCreated, added}} {
			for _, ct := range evs.cts {
				if err := m.ContainerEvent(ctx, evs.typ, igContainer(ct)); err != nil {
					if warn, suppressed := s.warnLog.Allow(time.Now()); warn {
						s.log.Warn("gadget module failed on a container event", "container", ct.Name, "event", evs.typ, "kind", pipeline.StageErrorKind(err), "error", err, "suppressed", suppressed)
					}
				}
			}
		}
		known = now
		if err := s.flush(ctx, out); err != nil && ctx.Err() == nil {
			s.log.Warn("emit the gadget module's events", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// watch returns a channel that is signalled after every resolver round in
// which the running containers changed, and the function that ends the
// watch. A signal that finds the channel full is merged with the pending
// one: a watcher reads the resolver's latest state when it wakes.
func (ci *containerIdentity) watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	ci.watchMu.Lock()
	if ci.watchers == nil {
		ci.watchers = map[chan struct{}]bool{}
	}
	ci.watchers[ch] = true
	ci.watchMu.Unlock()
	return ch, func() {
		ci.watchMu.Lock()
		delete(ci.watchers, ch)
		ci.watchMu.Unlock()
	}
}

// notifyWatchers signals every watcher; it never blocks.
func (ci *containerIdentity) notifyWatchers() {
	ci.watchMu.Lock()
	defer ci.watchMu.Unlock()
	for ch := range ci.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
