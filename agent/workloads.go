package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/workloads"
)

// This file wires container identity and event filters into the agent:
// which part of a source's filter runs in the kernel and which on the host,
// the resolver that maps mount namespaces to containers, the stages that
// enrich and filter events at the head of each pipeline, and the kernel
// filters that follow containers as they come and go.

// DefaultRuntimeSockets are the Docker Engine API sockets the agent uses
// when the config names none, those that exist: Podman's (rootful
// `podman system service`, or podman.socket) and Docker's.
var DefaultRuntimeSockets = []string{"/run/podman/podman.sock", "/run/docker.sock", "/var/run/docker.sock"}

// Names of the stages the agent puts at the head of pipelines. They hold
// a dot, which config names cannot, so they never collide with a stage of
// the config.
const (
	containersStageName = "builtin.containers"
	filterStageName     = "builtin.filter"
)

// sourceFilter is one source's filter, split between kernel and host.
type sourceFilter struct {
	kernel sources.Filter
	// host are the host-side conditions: the filter block's fields, and
	// what the gadget cannot filter in the kernel.
	host []hostCond
	// Containers the kernel's namespace set follows.
	containerNames []string
	allContainers  bool
	staticMntNS    []uint64
	needsResolver  bool
	rng            hcl.Range
}

// planSourceFilter decides how src's filter settings run for a gadget
// with spec: in the kernel where the gadget implements the filter
// contract, else as host-side conditions on its fields.
func planSourceFilter(src *config.Source, spec *sources.GadgetSpec, agentCfg config.Agent) (*sourceFilter, hcl.Diagnostics) {
	sf := &sourceFilter{rng: src.DefRange}
	f := src.Filter
	if f == nil {
		f = &config.SourceFilter{}
	} else {
		sf.rng = f.Range
	}
	var diags hcl.Diagnostics
	support := spec.FilterSupport()
	kernel := func(name string) bool { return slices.Contains(support, name) }
	host := func(field, cond, why string) {
		sf.host = append(sf.host, hostCond{expr: cond, field: field, why: why})
	}
	if f.PID != 0 {
		if kernel(sources.FilterPID) {
			sf.kernel.PID = f.PID
		} else {
			host("pid", fmt.Sprintf("pid==%d", f.PID), "pid")
		}
	}
	if f.TID != 0 {
		if kernel(sources.FilterTID) {
			sf.kernel.TID = f.TID
		} else {
			host("tid", fmt.Sprintf("tid==%d", f.TID), "tid")
		}
	}
	if f.UID != nil {
		if kernel(sources.FilterUID) {
			sf.kernel.UID = f.UID
		} else {
			host("uid", fmt.Sprintf("uid==%d", *f.UID), "uid")
		}
	}
	if f.GID != nil {
		if kernel(sources.FilterGID) {
			sf.kernel.GID = f.GID
		} else {
			host("gid", fmt.Sprintf("gid==%d", *f.GID), "gid")
		}
	}
	if f.Comm != "" {
		if kernel(sources.FilterComm) {
			sf.kernel.Comm = f.Comm
		} else {
			host("comm", "comm=="+escapeValue(f.Comm), "comm")
		}
	}
	if len(f.Cgroups) > 0 {
		if !kernel(sources.FilterCgroup) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cgroup filter not supported",
				Detail:  fmt.Sprintf("gadget %q has no kernel cgroup filter (it does not include sluice/filter.h or Inspektor Gadget's filter.h), and events carry no cgroup to filter on.", spec.Name),
				Subject: rangePtr(f.CgroupsRange)})
		}
		for _, c := range f.Cgroups {
			id, err := cgroupID(c)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown cgroup",
					Detail: fmt.Sprintf("cgroup %q: %v.", c, err), Subject: rangePtr(f.CgroupsRange)})
				continue
			}
			sf.kernel.ByCgroup = true
			sf.kernel.CgroupIDs = append(sf.kernel.CgroupIDs, id)
		}
	}
	sf.containerNames = f.Containers
	sf.allContainers = src.ContainersOnly
	sf.staticMntNS = f.MntNS
	if len(f.MntNS) > 0 || len(f.Containers) > 0 || src.ContainersOnly {
		sf.needsResolver = len(f.Containers) > 0 || src.ContainersOnly
		if kernel(sources.FilterMntNS) {
			sf.kernel.ByMntNS = true
			sf.kernel.MntNS = slices.Clone(f.MntNS)
		} else {
			// On the host: one condition per setting, all of which hold.
			if len(f.MntNS) > 0 {
				ids := make([]string, len(f.MntNS))
				for i, ns := range f.MntNS {
					ids[i] = strconv.FormatUint(ns, 10)
				}
				host("mntns_id", "mntns_id~^(?:"+strings.Join(ids, "|")+")$", "mntns")
			}
			if len(f.Containers) > 0 {
				names := make([]string, len(f.Containers))
				for i, n := range f.Containers {
					names[i] = regexp.QuoteMeta(n)
				}
				sf.host = append(sf.host, hostCond{expr: escapeValue(workloads.FieldContainerName + "~^(?:" + strings.Join(names, "|") + ")$")})
			}
			if src.ContainersOnly {
				sf.host = append(sf.host, hostCond{expr: workloads.FieldContainerID + "~."})
			}
		}
	}
	if agentCfg.FilterSelf && f.PID == 0 && f.TID == 0 {
		// A filter that picks processes by id may pick the agent itself;
		// otherwise the agent leaves its own events out.
		if kernel(sources.FilterExcludePID) {
			sf.kernel.ExcludePID = uint32(os.Getpid())
		} else {
			sf.host = append(sf.host, hostCond{expr: fmt.Sprintf("pid!=%d", os.Getpid()), field: "pid", optional: true})
		}
	}
	if f.Fields != "" {
		sf.host = append(sf.host, hostCond{expr: f.Fields, user: true})
	}
	return sf, diags
}

// hostCond is one host-side condition.
type hostCond struct {
	expr string
	// field is the field a fallback for a kernel filter needs, why the
	// filter it stands for; optional ones are dropped when the gadget
	// lacks the field.
	field, why string
	optional   bool
	user       bool // the filter block's fields
}

// escapeValue escapes commas, which separate conditions.
func escapeValue(s string) string { return strings.ReplaceAll(s, ",", `\,`) }

// hostFilter builds the source's host-side filter, checking that the
// gadget has the fields the kernel fallbacks need; src locates diagnostics.
func (sf *sourceFilter) hostFilter(src *config.Source, schemas []*pipeline.Schema) (*pipeline.FieldFilter, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var out *pipeline.FieldFilter
	for _, c := range sf.host {
		if c.field != "" && !allHave(schemas, c.field) {
			if c.optional {
				continue // the self filter, for a gadget without pids
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Filter not supported",
				Detail:  fmt.Sprintf("the gadget of source %q has no kernel %s filter (it does not include sluice/filter.h or Inspektor Gadget's filter.h) and no %s field to filter on.", src.Name, c.why, c.field),
				Subject: rangePtr(sf.rng)})
			continue
		}
		ff, err := pipeline.ParseFieldFilter(c.expr)
		if err != nil {
			subject := sf.rng
			if c.user && src.Filter != nil {
				subject = src.Filter.FieldsRange
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid field filter", Detail: err.Error() + ".", Subject: rangePtr(subject)})
			continue
		}
		out = out.And(ff)
	}
	return out, diags
}

func allHave(schemas []*pipeline.Schema, field string) bool {
	if len(schemas) == 0 {
		return false
	}
	for _, s := range schemas {
		if !s.HasField(field) {
			return false
		}
	}
	return true
}

// cgroupID resolves a cgroup filter entry: an id, or a cgroup v2 path.
func cgroupID(s string) (uint64, error) {
	if id, err := strconv.ParseUint(s, 10, 64); err == nil {
		return id, nil
	}
	return workloads.CgroupID(s)
}

// runtimeSockets returns the configured runtime sockets, or those of the
// default ones that exist.
func runtimeSockets(c config.Containers) []string {
	if len(c.Runtimes) > 0 {
		return c.Runtimes
	}
	var out, seen []string
	for _, s := range DefaultRuntimeSockets {
		real, err := filepath.EvalSymlinks(s)
		if err != nil {
			continue
		}
		if st, err := os.Stat(real); err != nil || st.Mode()&os.ModeSocket == 0 || slices.Contains(seen, real) {
			continue
		}
		seen = append(seen, real)
		out = append(out, s)
	}
	return out
}

// checkContainerRuntimes reports sources that select containers when
// there is no runtime to resolve them through.
func checkContainerRuntimes(cfg *config.File, resolved []*resolvedGadget) hcl.Diagnostics {
	var diags hcl.Diagnostics
	var sockets []string
	if cfg.Agent.Containers.Enabled {
		sockets = runtimeSockets(cfg.Agent.Containers)
	}
	for _, r := range resolved {
		if r.filter == nil || !r.filter.needsResolver || len(sockets) > 0 {
			continue
		}
		why := "no container runtime socket exists (" + strings.Join(DefaultRuntimeSockets, ", ") + "); name one in agent { containers { runtimes = [...] } }"
		if !cfg.Agent.Containers.Enabled {
			why = "container resolution is off (agent { containers { enabled = false } })"
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No container runtime",
			Detail: fmt.Sprintf("source %q selects containers, but %s.", r.source.Name, why), Subject: rangePtr(r.filter.rng)})
	}
	return diags
}

// follows reports whether the kernel namespace set of a source follows
// containers as they come and go.
func (sf *sourceFilter) follows() bool {
	return sf != nil && sf.kernel.ByMntNS && (sf.allContainers || len(sf.containerNames) > 0)
}

// mntNSFor returns the namespace set of sf for the running containers.
func (sf *sourceFilter) mntNSFor(live []*workloads.Container) []uint64 {
	set := slices.Clone(sf.staticMntNS)
	for _, c := range live {
		if sf.allContainers || slices.Contains(sf.containerNames, c.Name) {
			set = append(set, c.MntNS)
		}
	}
	return set
}

// containerIdentity is the agent's container resolution: one resolver for
// the agent's life over the runtime sockets its first config names or the
// host has (a reload that changes agent { containers } applies at the
// next start), the stages it puts at the head of pipelines, and the
// kernel filters that follow containers.
type containerIdentity struct {
	resolver *workloads.Resolver // nil: no runtime, no container identity
	sockets  []string
	wait     time.Duration
	log      *slog.Logger

	// watchers are signalled when the running containers change (the
	// containers data source of IG modules; see igcontainers.go).
	watchMu  sync.Mutex
	watchers map[chan struct{}]bool
}

func newContainerIdentity(cfg *config.File, reg *pipeline.Registry, log *slog.Logger) *containerIdentity {
	ci := &containerIdentity{wait: cfg.Agent.Containers.Wait, log: log}
	if !cfg.Agent.Containers.Enabled {
		return ci
	}
	ci.sockets = runtimeSockets(cfg.Agent.Containers)
	if len(ci.sockets) == 0 {
		return ci
	}
	var rts []workloads.Runtime
	for _, s := range ci.sockets {
		rts = append(rts, workloads.NewDockerAPI(s))
	}
	ci.resolver = workloads.NewResolver(workloads.Options{Runtimes: rts, Logger: log, Metrics: reg})
	return ci
}

// headStages returns the stages a pipeline starts with: container
// identity first (so that host filters can name its fields), then the
// host-side filters of its sources.
func (ci *containerIdentity) headStages(pp *pipelinePlan, reg *pipeline.Registry) []pipeline.Stage {
	var out []pipeline.Stage
	if ci != nil && ci.resolver != nil {
		out = append(out, workloads.NewEnricher(containersStageName, ci.resolver, ci.wait, reg))
	}
	if len(pp.hostFilters) > 0 {
		out = append(out, pipeline.NewFilterStage(filterStageName, pp.hostFilters))
	}
	return out
}

// kernelFilter returns the kernel filter a source's gadget opens with:
// its plan's, with the namespaces of the containers running now.
func (ci *containerIdentity) kernelFilter(sp *sourcePlan) sources.Filter {
	if sp.filter == nil {
		return sources.Filter{}
	}
	f := sp.filter.kernel
	if sp.filter.follows() && ci.resolver != nil {
		live, _ := ci.resolver.Containers()
		f.MntNS = sp.filter.mntNSFor(live)
	}
	return f
}

// catchUp gives a gadget that just opened the namespaces of the containers
// that started while it loaded.
func (ci *containerIdentity) catchUp(sp *sourcePlan, g *sources.Gadget) {
	if ci.resolver == nil || !sp.filter.follows() {
		return
	}
	live, _ := ci.resolver.Containers()
	if err := g.SetMntNS(sp.filter.mntNSFor(live)); err != nil {
		ci.log.Warn("update container filter", "source", sp.name, "error", err)
	}
}

// start runs the resolver until the returned stop is called, and keeps
// the container filters of the agent's running sources current. It lists
// the containers once before returning, so that gadgets open with the
// namespaces of the containers already running. A runtime that does not
// answer is logged, not fatal: events then go out without container
// identity until it does.
func (ci *containerIdentity) start(ctx context.Context, a *Agent) (stop func(context.Context)) {
	if ci.resolver == nil {
		if len(ci.sockets) == 0 && a.Config().Agent.Containers.Enabled {
			ci.log.Info("no container runtime socket found; events carry no container identity", "looked_for", DefaultRuntimeSockets)
		}
		return func(context.Context) {}
	}
	r := ci.resolver
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(rctx); err != nil {
			ci.log.Error("container resolver", "error", err)
		}
	}()
	first, cancelFirst := context.WithTimeout(ctx, 5*time.Second)
	err := r.Refresh(first)
	cancelFirst()
	live, _ := r.Containers()
	if err != nil {
		ci.log.Warn("container runtimes did not answer; events get container identity once they do", "runtimes", ci.sockets, "error", err)
	} else {
		ci.log.Info("container identity on", "runtimes", ci.sockets, "containers", len(live))
	}
	for _, sp := range a.Config().Sources {
		if sp.Filter == nil {
			continue
		}
		for _, name := range sp.Filter.Containers {
			if !slices.ContainsFunc(live, func(c *workloads.Container) bool { return c.Name == name }) {
				ci.log.Warn("no running container has this name yet; its events appear when it starts", "source", sp.Name, "container", name)
			}
		}
	}
	var applying sync.Mutex
	r.Subscribe(func(live []*workloads.Container, gen uint64) {
		// Serialised, and always the latest containers: an update that
		// races a gadget's opening converges on the next.
		applying.Lock()
		defer applying.Unlock()
		for _, ls := range a.followingSources() {
			if g := ls.gadget(); g != nil {
				if err := g.SetMntNS(ls.plan.filter.mntNSFor(live)); err != nil {
					ci.log.Warn("update container filter", "source", ls.plan.name, "error", err)
				}
			}
		}
		ci.notifyWatchers()
	})
	return func(context.Context) {
		cancel()
		<-done
	}
}

// followingSources lists the running sources whose kernel filter follows
// containers.
func (a *Agent) followingSources() []*liveSource {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*liveSource
	for _, ls := range a.sources {
		if ls.plan.filter.follows() {
			out = append(out, ls)
		}
	}
	return out
}

// workloadField reports whether a field is one the container stage adds.
func workloadField(name string) bool {
	return strings.HasPrefix(name, "container.") || strings.HasPrefix(name, "k8s.")
}
