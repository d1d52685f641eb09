package sources

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
)

// Filter selects, in the kernel, the events a gadget emits, for gadgets
// that include sluice/filter.h or Inspektor Gadget's filter.h (see
// docs/gadgets.md#filters). The zero value selects everything. A filtered
// event never reaches the ring buffer.
type Filter struct {
	PID  uint32  // tgid; 0: any
	TID  uint32  // 0: any
	UID  *uint32 // nil: any
	GID  *uint32 // nil: any
	Comm string  // "": any; at most 15 bytes
	// ByMntNS restricts events to the mount namespaces in MntNS (none at
	// all when it is empty); SetMntNS changes the set while the gadget
	// runs.
	ByMntNS bool
	MntNS   []uint64
	// ByCgroup restricts events to tasks in the cgroup v2 groups whose ids
	// (the directories' inode numbers) are in CgroupIDs.
	ByCgroup  bool
	CgroupIDs []uint64
	// ExcludePID drops the events of one process: the agent's own.
	ExcludePID uint32
}

// IsZero reports whether f selects everything.
func (f *Filter) IsZero() bool {
	return f.PID == 0 && f.TID == 0 && f.UID == nil && f.GID == nil && f.Comm == "" &&
		!f.ByMntNS && !f.ByCgroup && f.ExcludePID == 0
}

// Filter names, as FilterSupport and FilterError list them.
const (
	FilterPID        = "pid"
	FilterTID        = "tid"
	FilterUID        = "uid"
	FilterGID        = "gid"
	FilterComm       = "comm"
	FilterMntNS      = "mntns"
	FilterCgroup     = "cgroup"
	FilterExcludePID = "exclude_pid"
)

// Names of the filter contract's globals and maps.
const (
	filterByMntNS      = "gadget_filter_by_mntns"
	filterMntNSMap     = "gadget_mntns_filter_map"
	filterByCgroup     = "gadget_filter_by_cgroup"
	filterCgroupMap    = "gadget_cgroup_filter_map"
	filterExcludePID   = "gadget_filter_exclude_pid"
	filterDiscardedMap = "gadget_filter_discarded"
)

// filterParams maps the filters set through parameters to their variable.
var filterParams = map[string]string{
	FilterPID:  "targ_pid",
	FilterTID:  "targ_tid",
	FilterUID:  "targ_uid",
	FilterGID:  "targ_gid",
	FilterComm: "targ_comm",
}

// FilterParam reports whether name is a parameter of the filter contract
// (targ_pid, ...), which Filter sets; listings may show them apart.
func FilterParam(name string) bool {
	for _, v := range filterParams {
		if v == name {
			return true
		}
	}
	return false
}

// FilterSupport returns the kernel filters the gadget implements, in a
// fixed order: the subset of pid, tid, uid, gid, comm, mntns, cgroup and
// exclude_pid whose globals (and maps) the ELF declares.
func (g *GadgetSpec) FilterSupport() []string {
	cs := g.collection
	var out []string
	for _, f := range []string{FilterPID, FilterTID, FilterUID, FilterGID, FilterComm} {
		if _, ok := g.Param(filterParams[f]); ok {
			out = append(out, f)
		}
	}
	if constVar(cs, filterByMntNS) && cs.Maps[filterMntNSMap] != nil {
		out = append(out, FilterMntNS)
	}
	if constVar(cs, filterByCgroup) && cs.Maps[filterCgroupMap] != nil {
		out = append(out, FilterCgroup)
	}
	if constVar(cs, filterExcludePID) {
		out = append(out, FilterExcludePID)
	}
	return out
}

func constVar(cs *ebpf.CollectionSpec, name string) bool {
	v := cs.Variables[name]
	return v != nil && v.Constant()
}

// wanted lists the filters f sets, by FilterSupport's names.
func (f *Filter) wanted() []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(f.PID != 0, FilterPID)
	add(f.TID != 0, FilterTID)
	add(f.UID != nil, FilterUID)
	add(f.GID != nil, FilterGID)
	add(f.Comm != "", FilterComm)
	add(f.ByMntNS, FilterMntNS)
	add(f.ByCgroup, FilterCgroup)
	add(f.ExcludePID != 0, FilterExcludePID)
	return out
}

// FilterError reports kernel filters a gadget does not implement, or
// filter values that cannot be applied.
type FilterError struct {
	Gadget      string
	Unsupported []string // filters the gadget lacks, by FilterSupport's names
	Err         error    // a bad value, when Unsupported is empty
}

func (e *FilterError) Error() string {
	if len(e.Unsupported) > 0 {
		return fmt.Sprintf("gadget %q has no kernel filter for %s (it does not include sluice/filter.h or Inspektor Gadget's filter.h); filter on its fields on the host instead", e.Gadget, strings.Join(e.Unsupported, ", "))
	}
	return fmt.Sprintf("gadget %q filter: %v", e.Gadget, e.Err)
}

func (e *FilterError) Unwrap() error { return e.Err }

// CheckFilter reports whether the gadget implements every filter f sets,
// and whether f's values fit; the error is a *FilterError.
func (g *GadgetSpec) CheckFilter(f Filter) error {
	_, err := g.filterParams(f)
	return err
}

// filterParams turns the parameter-backed part of f into parameter values,
// and checks the rest against the gadget.
func (g *GadgetSpec) filterParams(f Filter) (map[string]string, error) {
	have := g.FilterSupport()
	var missing []string
	for _, w := range f.wanted() {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return nil, &FilterError{Gadget: g.Name, Unsupported: missing}
	}
	if len(f.Comm) > 15 {
		return nil, &FilterError{Gadget: g.Name, Err: fmt.Errorf("comm %q is longer than the kernel's 15 bytes", f.Comm)}
	}
	if f.ByMntNS && len(f.MntNS) > int(g.collection.Maps[filterMntNSMap].MaxEntries) {
		return nil, &FilterError{Gadget: g.Name, Err: fmt.Errorf("%d mount namespaces: the gadget's filter holds at most %d", len(f.MntNS), g.collection.Maps[filterMntNSMap].MaxEntries)}
	}
	if f.ByCgroup && len(f.CgroupIDs) > int(g.collection.Maps[filterCgroupMap].MaxEntries) {
		return nil, &FilterError{Gadget: g.Name, Err: fmt.Errorf("%d cgroups: the gadget's filter holds at most %d", len(f.CgroupIDs), g.collection.Maps[filterCgroupMap].MaxEntries)}
	}
	out := map[string]string{}
	if f.PID != 0 {
		out[filterParams[FilterPID]] = strconv.FormatUint(uint64(f.PID), 10)
	}
	if f.TID != 0 {
		out[filterParams[FilterTID]] = strconv.FormatUint(uint64(f.TID), 10)
	}
	if f.UID != nil {
		out[filterParams[FilterUID]] = strconv.FormatUint(uint64(*f.UID), 10)
	}
	if f.GID != nil {
		out[filterParams[FilterGID]] = strconv.FormatUint(uint64(*f.GID), 10)
	}
	if f.Comm != "" {
		out[filterParams[FilterComm]] = f.Comm
	}
	return out, nil
}

// applyFilterGlobals sets the filter's non-parameter globals in a spec
// about to be loaded.
func applyFilterGlobals(cs *ebpf.CollectionSpec, f Filter) error {
	set := func(name string, v any) error {
		if err := cs.Variables[name].Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		return nil
	}
	if f.ByMntNS {
		if err := set(filterByMntNS, true); err != nil {
			return err
		}
	}
	if f.ByCgroup {
		if err := set(filterByCgroup, true); err != nil {
			return err
		}
	}
	if f.ExcludePID != 0 {
		if err := set(filterExcludePID, f.ExcludePID); err != nil {
			return err
		}
	}
	return nil
}

// kernelFilter is a loaded gadget's filter sets, which change at run time.
type kernelFilter struct {
	mu     sync.Mutex
	mntns  *ebpf.Map
	inSet  map[uint64]bool
	cgroup *ebpf.Map
}

// fill writes the initial sets into the loaded maps, before the programs
// attach.
func (k *kernelFilter) fill(coll *ebpf.Collection, f Filter) error {
	if f.ByMntNS {
		k.mntns = coll.Maps[filterMntNSMap]
		k.inSet = map[uint64]bool{}
		if err := k.setMntNS(f.MntNS); err != nil {
			return err
		}
	}
	if f.ByCgroup {
		k.cgroup = coll.Maps[filterCgroupMap]
		for _, id := range f.CgroupIDs {
			if err := k.cgroup.Update(id, uint8(1), ebpf.UpdateAny); err != nil {
				return fmt.Errorf("add cgroup %d to the filter: %w", id, err)
			}
		}
	}
	return nil
}

// setMntNS makes the mount namespace set exactly set, adding before it
// removes so that a namespace in both sets is never missing.
func (k *kernelFilter) setMntNS(set []uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	want := make(map[uint64]bool, len(set))
	var errs []error
	for _, ns := range set {
		want[ns] = true
		if k.inSet[ns] {
			continue
		}
		if err := k.mntns.Update(ns, uint32(1), ebpf.UpdateAny); err != nil {
			errs = append(errs, fmt.Errorf("add mount namespace %d to the filter: %w", ns, err))
			continue
		}
		k.inSet[ns] = true
	}
	for ns := range k.inSet {
		if want[ns] {
			continue
		}
		if err := k.mntns.Delete(ns); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("remove mount namespace %d from the filter: %w", ns, err))
			continue
		}
		delete(k.inSet, ns)
	}
	return errors.Join(errs...)
}

// ErrNoMntNSFilter is returned by SetMntNS for a gadget not opened with a
// mount namespace filter.
var ErrNoMntNSFilter = errors.New("the gadget was not opened with a mount namespace filter")

// SetMntNS replaces the set of mount namespaces whose events the gadget
// emits (the containers a filter names come and go). It needs a gadget
// configured with Filter.ByMntNS; before Open it sets the initial set,
// which Open writes before anything attaches. Safe for concurrent use
// with Open, Run and Close.
func (g *Gadget) SetMntNS(set []uint64) error {
	g.filterMu.Lock()
	if !g.cfg.Filter.ByMntNS {
		g.filterMu.Unlock()
		return ErrNoMntNSFilter
	}
	k := g.kfilter
	if k == nil {
		g.cfg.Filter.MntNS = slices.Clone(set)
		g.filterMu.Unlock()
		return nil
	}
	g.filterMu.Unlock()
	if err := k.setMntNS(set); err != nil {
		return fmt.Errorf("gadget %q: %w", g.spec.Name, err)
	}
	return nil
}

// SelectsMntNS reports whether the gadget's mount namespace filter lets
// the events of mount namespace ns through: the set the kernel filter
// holds (before Open, the one it opens with), read without a system call.
// Every namespace passes a gadget without one (Filter.ByMntNS unset).
// Safe for concurrent use with SetMntNS, Open and Close.
func (g *Gadget) SelectsMntNS(ns uint64) bool {
	g.filterMu.Lock()
	if !g.cfg.Filter.ByMntNS {
		g.filterMu.Unlock()
		return true
	}
	k := g.kfilter
	if k == nil {
		in := slices.Contains(g.cfg.Filter.MntNS, ns)
		g.filterMu.Unlock()
		return in
	}
	g.filterMu.Unlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.inSet[ns]
}
