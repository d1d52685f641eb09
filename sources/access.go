package sources

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
)

// Hooks for a gadget's own code (its embedded Wasm module, see
// docs/stage-abi.md, "Gadget modules"): parameters can be read and changed
// between NewGadget and Open, and the loaded maps are found by name.

// ErrLoaded reports a parameter change after Open: parameters are
// constants the verifier saw when the gadget loaded.
var ErrLoaded = errors.New("the gadget is loaded; parameters are set before load")

// ErrNotLoaded reports a map asked for before Open or after Close.
var ErrNotLoaded = errors.New("the gadget is not loaded; its maps exist from load to close")

// Param returns the value parameter name has when the gadget loads (or
// had, once loaded): the value set by the config or SetParam, otherwise the
// default from .rodata, rendered as text. An unknown name is a *ParamError.
// Safe for concurrent use with Run; not with SetParam.
func (g *Gadget) Param(name string) (string, error) {
	p, ok := g.spec.paramByKey(name)
	if !ok {
		return "", unknownParam(g.spec.Name, name, "", g.spec.paramList())
	}
	if b, ok := g.params[p.Name]; ok {
		return renderParam(*p, b), nil
	}
	return p.Default, nil
}

// SetParam sets parameter name to value (text, as in the config) for the
// load to come. It fails with a *ParamError for an unknown name or a value
// that does not fit the parameter's type, and with ErrLoaded once Open has
// loaded the gadget. Like Open, it must not run concurrently with other
// methods.
func (g *Gadget) SetParam(name, value string) error {
	if g.coll != nil {
		return fmt.Errorf("set gadget %q parameter %q: %w", g.spec.Name, name, ErrLoaded)
	}
	b, err := g.spec.encodeParams(map[string]string{name: value})
	if err != nil {
		return err
	}
	p, _ := g.spec.paramByKey(name)
	g.params[p.Name] = b[p.Name]
	return nil
}

// Map returns the loaded map called name (any map of the gadget's ELF:
// counters, configuration, output buffers). The map belongs to the gadget:
// callers must not close it, and it is closed by Close. ErrNotLoaded
// before Open and after Close; an unknown name lists the gadget's maps.
// Safe for concurrent use with Run; not with Open or Close.
func (g *Gadget) Map(name string) (*ebpf.Map, error) {
	if g.coll == nil {
		return nil, fmt.Errorf("gadget %q map %q: %w", g.spec.Name, name, ErrNotLoaded)
	}
	m, ok := g.coll.Maps[name]
	if !ok {
		return nil, fmt.Errorf("gadget %q has no map %q (it has %s)", g.spec.Name, name, mapNames(g.coll))
	}
	return m, nil
}

func mapNames(coll *ebpf.Collection) string {
	names := make([]string, 0, len(coll.Maps))
	for n := range coll.Maps {
		names = append(names, n)
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
