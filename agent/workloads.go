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

// workloadPlan is what the agent runs for container identity: a resolver
// when a runtime is configured or found, and the stages each pipeline
// starts with.
type workloadPlan struct {
	resolver *workloads.Resolver
	sockets  []string
	wait     time.Duration
	// hostFilters are the host-side filters by source name.
	hostFilters map[string]*pipeline.FieldFilter
	// follow are the gadgets whose namespace set follows containers.
	follow []*containerFilter
	log    *slog.Logger
}

// containerFilter keeps one gadget's kernel namespace set on the
// containers its source selects.
type containerFilter struct {
	source string
	g      *sources.Gadget
	names  []string
	all    bool
	static []uint64

	mu      sync.Mutex
	applied uint64 // generation of the last set applied
}

func (cf *containerFilter) set(live []*workloads.Container) []uint64 {
	set := slices.Clone(cf.static)
	for _, c := range live {
		if cf.all || slices.Contains(cf.names, c.Name) {
			set = append(set, c.MntNS)
		}
	}
	return set
}

// apply sets the gadget's namespaces for the containers of round gen,
// unless a later round's are already applied.
func (cf *containerFilter) apply(live []*workloads.Container, gen uint64, log *slog.Logger) {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if gen < cf.applied {
		return
	}
	cf.applied = gen
	if err := cf.g.SetMntNS(cf.set(live)); err != nil {
		log.Warn("update container filter", "source", cf.source, "error", err)
	}
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

// planWorkloads builds the resolver and the host-side filters from the
// resolved gadgets. Nothing runs until startWorkloads.
func planWorkloads(cfg *config.File, resolved []*resolvedGadget, reg *pipeline.Registry, log *slog.Logger) (*workloadPlan, hcl.Diagnostics) {
	wp := &workloadPlan{hostFilters: map[string]*pipeline.FieldFilter{}, wait: cfg.Agent.Containers.Wait, log: log}
	var diags hcl.Diagnostics
	if cfg.Agent.Containers.Enabled {
		wp.sockets = runtimeSockets(cfg.Agent.Containers)
	}
	for _, r := range resolved {
		if r.hostFilter != nil {
			wp.hostFilters[r.source.Name] = r.hostFilter
		}
		if r.filter == nil || !r.filter.needsResolver {
			continue
		}
		if len(wp.sockets) == 0 {
			why := "no container runtime socket exists (" + strings.Join(DefaultRuntimeSockets, ", ") + "); name one in agent { containers { runtimes = [...] } }"
			if !cfg.Agent.Containers.Enabled {
				why = "container resolution is off (agent { containers { enabled = false } })"
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No container runtime",
				Detail: fmt.Sprintf("source %q selects containers, but %s.", r.source.Name, why), Subject: rangePtr(r.filter.rng)})
			continue
		}
		if r.filter.kernel.ByMntNS {
			wp.follow = append(wp.follow, &containerFilter{
				source: r.source.Name, g: r.gadget, names: r.filter.containerNames,
				all: r.filter.allContainers, static: r.filter.staticMntNS,
			})
		}
	}
	if len(wp.sockets) > 0 {
		var rts []workloads.Runtime
		for _, s := range wp.sockets {
			rts = append(rts, workloads.NewDockerAPI(s))
		}
		wp.resolver = workloads.NewResolver(workloads.Options{Runtimes: rts, Logger: log, Metrics: reg})
	}
	return wp, diags
}

// stagesFor returns the stages a pipeline with these sources starts
// with: container identity first (so that host filters can name its
// fields), then the host-side filters.
func (wp *workloadPlan) stagesFor(p *config.Pipeline, reg *pipeline.Registry) []pipeline.Stage {
	if wp == nil {
		return nil
	}
	var out []pipeline.Stage
	if wp.resolver != nil {
		out = append(out, workloads.NewEnricher(containersStageName, wp.resolver, wp.wait, reg))
	}
	filters := map[string]*pipeline.FieldFilter{}
	for _, ref := range p.Sources {
		if ff := wp.hostFilters[ref.Name]; ff != nil {
			filters[ref.Name] = ff
		}
	}
	if len(filters) > 0 {
		out = append(out, pipeline.NewFilterStage(filterStageName, filters))
	}
	return out
}

// startWorkloads runs the resolver until the returned stop is called, and
// keeps the container filters' namespace sets current. It lists the
// containers once before returning, so that gadgets open with the sets of
// the containers already running. A runtime that does not answer is
// logged, not fatal: events then go out without container identity until
// it does.
func (wp *workloadPlan) startWorkloads(ctx context.Context) (stop func()) {
	if wp == nil || wp.resolver == nil {
		return func() {}
	}
	r := wp.resolver
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(rctx); err != nil {
			wp.log.Error("container resolver", "error", err)
		}
	}()
	first, cancelFirst := context.WithTimeout(ctx, 5*time.Second)
	err := r.Refresh(first)
	cancelFirst()
	live, gen := r.Containers()
	if err != nil {
		wp.log.Warn("container runtimes did not answer; events get container identity once they do", "runtimes", wp.sockets, "error", err)
	} else {
		wp.log.Info("container identity on", "runtimes", wp.sockets, "containers", len(live))
	}
	for _, cf := range wp.follow {
		cf.apply(live, gen, wp.log)
		for _, name := range cf.names {
			if !slices.ContainsFunc(live, func(c *workloads.Container) bool { return c.Name == name }) {
				wp.log.Warn("no running container has this name yet; its events appear when it starts", "source", cf.source, "container", name)
			}
		}
	}
	r.Subscribe(func(live []*workloads.Container, gen uint64) {
		for _, cf := range wp.follow {
			cf.apply(live, gen, wp.log)
		}
	})
	return func() {
		cancel()
		<-done
	}
}

// workloadField reports whether a field is one the container stage adds.
func workloadField(name string) bool {
	return strings.HasPrefix(name, "container.") || strings.HasPrefix(name, "k8s.")
}
