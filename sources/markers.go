package sources

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// The gadget contract's markers, in every form Inspektor Gadget (IG) has
// emitted, so an object built with any IG release's headers (or with
// sluice's, which follow IG's current form) is read the same way:
//
//   - names of unused globals: gadget_tracer_<name>___<map>___<struct>,
//     gadget_param_<var>, gadget_mapiter_<name>___<map>, and for iterators
//     gadget_snapshotter_<name>___<struct>___<prog>[___<prog>...] (IG until
//     GADGET_ITER), gadget_iter_<name>___<struct>___<prog>... (GADGET_ITER
//     and GADGET_SNAPSHOTTER since), gadget_mapelem_iter_target_<prog>___<map>;
//   - BTF decl tags (IG's headers today): ig:tracer:<name>___<map>___<struct>,
//     ig:param:<var>, ig:mapiter:<name>___<map>, ig:iter_type:<name>___<struct>
//     with ig:iter:<name> on each program's FUNC, and
//     ig:iter_target_map:<prog>___<map>.
//
// gadget_optional_<prog> is a sluice extension.
const (
	tracerPrefix      = "gadget_tracer_"
	paramPrefix       = "gadget_param_"
	optionalPrefix    = "gadget_optional_"
	mapIterPrefix     = "gadget_mapiter_"
	snapshotterPrefix = "gadget_snapshotter_"
	iterPrefix        = "gadget_iter_"
	iterTargetPrefix  = "gadget_mapelem_iter_target_"
	lostSuffix        = "_lost_samples"
	maxEntriesSuffix  = "_max_entries"

	tagPrefix = "ig:"
)

// markers is what a gadget's markers declare, before it is checked against
// the programs and maps.
type markers struct {
	tracers     []tracerMarker
	params      map[string]string // variable -> the marker that names it
	iters       map[string]*iterMarker
	iterTargets map[string]string // iter/bpf_map_elem program -> map
	mapIters    []mapIterMarker
	optional    map[string]bool
}

type tracerMarker struct{ marker, name, mapName, typeName string }

type iterMarker struct {
	name, typeName string
	marker         string
	programs       []string
}

type mapIterMarker struct{ marker, name, mapName string }

// readMarkers collects the markers from the object's BTF: the names of its
// variables and the decl tags on variables and functions. A marker that is
// malformed, or one of IG's expression tags sluice does not evaluate, is
// an error naming it.
func readMarkers(cs *ebpf.CollectionSpec) (*markers, error) {
	m := &markers{
		params:      map[string]string{},
		iters:       map[string]*iterMarker{},
		iterTargets: map[string]string{},
		optional:    map[string]bool{},
	}
	var names []string
	tags := map[string][]string{} // tag -> the declarations carrying it
	for typ, err := range cs.Types.All() {
		if err != nil {
			return nil, fmt.Errorf("read BTF: %w", err)
		}
		switch t := typ.(type) {
		case *btf.Var:
			names = append(names, t.Name)
			for _, tag := range t.Tags {
				tags[tag] = append(tags[tag], t.Name)
			}
		case *btf.Func:
			for _, tag := range t.Tags {
				tags[tag] = append(tags[tag], t.Name)
			}
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if err := m.addName(n); err != nil {
			return nil, err
		}
	}
	tagNames := make([]string, 0, len(tags))
	for tag := range tags {
		tagNames = append(tagNames, tag)
	}
	sort.Strings(tagNames)
	for _, tag := range tagNames {
		decls := tags[tag]
		sort.Strings(decls)
		for _, decl := range decls {
			if err := m.addTag(tag, decl); err != nil {
				return nil, err
			}
		}
	}
	for _, it := range m.iters {
		sort.Strings(it.programs)
		it.programs = dedupSorted(it.programs)
	}
	return m, nil
}

func dedupSorted(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// addName reads a marker encoded in a variable's name.
func (m *markers) addName(v string) error {
	switch {
	case strings.HasPrefix(v, tracerPrefix):
		parts := strings.Split(strings.TrimPrefix(v, tracerPrefix), "___")
		if len(parts) != 3 {
			return fmt.Errorf("tracer marker %q: want gadget_tracer_<name>___<map>___<struct>", v)
		}
		m.addTracer(tracerMarker{marker: v, name: parts[0], mapName: parts[1], typeName: parts[2]})
	case strings.HasPrefix(v, paramPrefix):
		m.params[strings.TrimPrefix(v, paramPrefix)] = v
	case strings.HasPrefix(v, optionalPrefix):
		m.optional[strings.TrimPrefix(v, optionalPrefix)] = true
	case strings.HasPrefix(v, mapIterPrefix):
		parts := strings.Split(strings.TrimPrefix(v, mapIterPrefix), "___")
		if len(parts) != 2 {
			return fmt.Errorf("map iterator marker %q: want gadget_mapiter_<name>___<map>", v)
		}
		m.addMapIter(mapIterMarker{marker: v, name: parts[0], mapName: parts[1]})
	case strings.HasPrefix(v, iterTargetPrefix):
		parts := strings.Split(strings.TrimPrefix(v, iterTargetPrefix), "___")
		if len(parts) != 2 {
			return fmt.Errorf("iterator target marker %q: want gadget_mapelem_iter_target_<program>___<map>", v)
		}
		m.iterTargets[parts[0]] = parts[1]
	case strings.HasPrefix(v, snapshotterPrefix), strings.HasPrefix(v, iterPrefix):
		rest := strings.TrimPrefix(strings.TrimPrefix(v, snapshotterPrefix), iterPrefix)
		parts := strings.Split(rest, "___")
		if len(parts) < 3 {
			return fmt.Errorf("iterator marker %q: want gadget_iter_<name>___<struct>___<program>[___<program>...] (GADGET_ITER with at least one program)", v)
		}
		return m.addIter(v, parts[0], parts[1], parts[2:])
	}
	return nil
}

// addTag reads a BTF decl tag on declaration decl.
func (m *markers) addTag(tag, decl string) error {
	body, ok := strings.CutPrefix(tag, tagPrefix)
	if !ok {
		return nil
	}
	kind, value, _ := strings.Cut(body, ":")
	split := func(n int, want string) ([]string, error) {
		parts := strings.Split(value, "___")
		if len(parts) != n {
			return nil, fmt.Errorf("marker %q on %s: want %s", tag, decl, want)
		}
		return parts, nil
	}
	switch kind {
	case "tracer":
		p, err := split(3, "ig:tracer:<name>___<map>___<struct>")
		if err != nil {
			return err
		}
		m.addTracer(tracerMarker{marker: tag, name: p[0], mapName: p[1], typeName: p[2]})
	case "param":
		m.params[value] = tag
	case "mapiter":
		p, err := split(2, "ig:mapiter:<name>___<map>")
		if err != nil {
			return err
		}
		m.addMapIter(mapIterMarker{marker: tag, name: p[0], mapName: p[1]})
	case "iter_type":
		p, err := split(2, "ig:iter_type:<name>___<struct>")
		if err != nil {
			return err
		}
		return m.addIter(tag, p[0], p[1], nil)
	case "iter":
		// On a program: it belongs to iterator value.
		it := m.iters[value]
		if it == nil {
			it = &iterMarker{name: value}
			m.iters[value] = it
		}
		it.programs = append(it.programs, decl)
	case "iter_target_map":
		p, err := split(2, "ig:iter_target_map:<program>___<map>")
		if err != nil {
			return err
		}
		m.iterTargets[p[0]] = p[1]
	case "only_if", "attach_to", "assert", "define":
		macro := map[string]string{"only_if": "GADGET_MAP_ONLY_IF", "attach_to": "GADGET_PROG_ATTACH_TO", "assert": "GADGET_ASSERT", "define": "GADGET_EXPR_DEFINE"}[kind]
		return fmt.Errorf("marker %q on %s (%s) holds an Inspektor Gadget expression, which sluice does not evaluate; build the gadget without %s", tag, decl, macro, macro)
	}
	return nil
}

func (m *markers) addTracer(t tracerMarker) {
	for _, have := range m.tracers {
		if have.name == t.name && have.mapName == t.mapName && have.typeName == t.typeName {
			return // the same tracer in two forms
		}
	}
	m.tracers = append(m.tracers, t)
}

func (m *markers) addMapIter(mi mapIterMarker) {
	for _, have := range m.mapIters {
		if have.name == mi.name && have.mapName == mi.mapName {
			return
		}
	}
	m.mapIters = append(m.mapIters, mi)
}

func (m *markers) addIter(marker, name, typeName string, programs []string) error {
	it := m.iters[name]
	if it == nil {
		it = &iterMarker{name: name}
		m.iters[name] = it
	}
	if it.typeName != "" && it.typeName != typeName {
		return fmt.Errorf("iterator %q: marker %q says its elements are struct %s, but %q says struct %s", name, marker, typeName, it.marker, it.typeName)
	}
	if it.typeName == "" {
		it.typeName, it.marker = typeName, marker
	}
	it.programs = append(it.programs, programs...)
	return nil
}
