package sources

import (
	"bytes"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/sluice-dev/sluice/gadgets"
)

// Verify loads the gadget into the kernel as Open would, with its
// parameters and map sizes, then unloads it without attaching anything:
// the verifier's verdict on every program and the kernel's on every map,
// with nothing run. Maps pinned by name are not pinned, and the socket
// enricher is neither loaded nor shared (the gadget's socket map is made
// in the enricher's shape). It returns the optional programs the kernel
// refused, which Open would skip; a refused program that is not optional
// is a *ProgramError carrying the verifier log's tail. It needs the
// privileges Open needs (ErrPrivileges) and is safe to call beside a
// running Open of the same gadget.
func (g *Gadget) Verify() (skipped []string, err error) {
	if err := CheckPrivileges(); err != nil {
		return nil, err
	}
	cs := g.spec.CollectionSpec()
	if err := applyParams(cs, g.params); err != nil {
		return nil, fmt.Errorf("gadget %q: %w", g.spec.Name, err)
	}
	if err := g.sizeMaps(cs); err != nil {
		return nil, fmt.Errorf("gadget %q: %w", g.spec.Name, err)
	}
	g.sizeBuffers(cs)
	for _, ms := range cs.Maps {
		ms.Pinning = ebpf.PinNone
	}
	if ms, ok := cs.Maps[socketsMap]; ok {
		if shape, err := enricherMapSpec(); err == nil {
			ms.KeySize, ms.ValueSize, ms.MaxEntries, ms.Flags = shape.KeySize, shape.ValueSize, shape.MaxEntries, shape.Flags
			ms.Key, ms.Value = nil, nil
		}
	}
	// A scratch gadget: loading sets its collection, not g's.
	scratch := &Gadget{spec: g.spec, cfg: g.cfg, params: g.params, log: g.log}
	skipped, err = scratch.loadCollection(cs)
	if scratch.coll != nil {
		scratch.coll.Close()
	}
	return skipped, err
}

// enricherMapSpec is the socket enricher's map as its ELF declares it.
func enricherMapSpec() (*ebpf.MapSpec, error) {
	elf, err := gadgets.Helper("socket_enricher")
	if err != nil {
		return nil, err
	}
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf))
	if err != nil {
		return nil, fmt.Errorf("parse the socket enricher: %w", err)
	}
	ms, ok := cs.Maps[socketsMap]
	if !ok {
		return nil, fmt.Errorf("the socket enricher has no map %s", socketsMap)
	}
	return ms, nil
}
