package sources

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Load-time contracts of Inspektor Gadget's gadgets: maps sized by
// parameters, maps pinned by name, the socket enricher's types.

// DefaultPinRoot is where maps a gadget pins by name (LIBBPF_PIN_BY_NAME)
// go: a directory per gadget instance below it, removed on Close, so two
// instances of one gadget never share pinned state by accident.
const DefaultPinRoot = bpffsPath + "/sluice"

// sizeMaps applies the <map>_max_entries parameters: the value set (or the
// default) becomes the map's max_entries before load.
func (g *Gadget) sizeMaps(cs *ebpf.CollectionSpec) error {
	for _, p := range g.spec.Params {
		if p.SizesMap == "" {
			continue
		}
		text := p.Default
		if b, ok := g.params[p.Name]; ok {
			text = renderParam(p, b)
		}
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil || n <= 0 || n > 1<<31 {
			return fmt.Errorf("parameter %s sizes map %s: want a positive number of entries, got %s", p.Name, p.SizesMap, text)
		}
		cs.Maps[p.SizesMap].MaxEntries = uint32(n)
	}
	return nil
}

var pinInstances atomic.Uint64

// preparePins gives this instance a pin directory when a map is pinned by
// name. Maps pinned otherwise (by a path of their own) are refused: sluice
// would not know when to remove them.
func (g *Gadget) preparePins(cs *ebpf.CollectionSpec) error {
	pinned := false
	for name, ms := range cs.Maps {
		switch ms.Pinning {
		case ebpf.PinNone:
		case ebpf.PinByName:
			pinned = true
		default:
			return fmt.Errorf("map %s asks for pinning type %d; sluice supports LIBBPF_PIN_BY_NAME (a directory per gadget instance) or none", name, ms.Pinning)
		}
	}
	if !pinned {
		return nil
	}
	root := g.cfg.PinRoot
	if root == "" {
		root = DefaultPinRoot
	}
	dir := filepath.Join(root, fmt.Sprintf("%s-%d-%d", sanitizePinName(g.cfg.Source), os.Getpid(), pinInstances.Add(1)))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin directory for maps pinned by name: %w", err)
	}
	g.pinDir = dir
	return nil
}

func sanitizePinName(s string) string {
	if s == "" {
		return "gadget"
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '.' || r < ' ' {
			return '_'
		}
		return r
	}, s)
}

// removePins unpins this instance's maps and removes its directory. The
// maps themselves live on while a program or fd holds them.
func (g *Gadget) removePins() error {
	if g.pinDir == "" {
		return nil
	}
	entries, err := os.ReadDir(g.pinDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pinned maps: %w", err)
	}
	for _, e := range entries {
		_ = os.Remove(filepath.Join(g.pinDir, e.Name()))
	}
	if err := os.Remove(g.pinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pin directory %s: %w", g.pinDir, err)
	}
	g.pinDir = ""
	return nil
}

// PinDir returns the directory this instance pins maps in, "" when it pins
// none or is closed.
func (g *Gadget) PinDir() string { return g.pinDir }

func (g *Gadget) collectionOptions() ebpf.CollectionOptions {
	var opts ebpf.CollectionOptions
	opts.Maps.PinPath = g.pinDir
	opts.MapReplacements = g.mapReplacements
	if t := socketEnricherTypes(); t != nil {
		opts.Programs.ExtraRelocationTargets = []*btf.Spec{t}
	}
	return opts
}

// useSocketEnricher gives a gadget that has Inspektor Gadget's socket map
// the enricher's map instead, shaped as the enricher's (the gadget reads
// its values through CO-RE relocations, so their layout is the
// enricher's). Without the enricher the gadget still runs; its lookups
// find nothing.
func (g *Gadget) useSocketEnricher(cs *ebpf.CollectionSpec) {
	ms, ok := cs.Maps[socketsMap]
	if !ok {
		return
	}
	m, spec, err := enricher.acquire(g.log)
	if err != nil {
		g.log.Warn("socket enricher unavailable: the gadget's socket lookups find nothing", "map", socketsMap, "error", err)
		return
	}
	g.enricherHeld = true
	ms.KeySize, ms.ValueSize, ms.MaxEntries, ms.Flags = spec.KeySize, spec.ValueSize, spec.MaxEntries, spec.Flags
	ms.Key, ms.Value = nil, nil
	if g.mapReplacements == nil {
		g.mapReplacements = map[string]*ebpf.Map{}
	}
	g.mapReplacements[socketsMap] = m
}

// errnoOf returns the errno inside err, or err itself: the kernel's answer
// without the loader's guesses about it.
func errnoOf(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
