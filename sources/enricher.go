package sources

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/sluice-dev/sluice/gadgets"
)

// Inspektor Gadget's socket enricher, done by sluice: gadgets that include
// IG's sockets map (gadget_sockets) look up who owns a socket; the map is
// filled by sluice's enricher object (gadgets/helpers/socket_enricher.bpf.c),
// loaded once per process and shared by every gadget that has the map (the
// gadget's map is replaced by the enricher's). The value type,
// struct gadget_socket_value, is not a kernel type: gadgets access it
// through CO-RE relocations, resolved against the enricher's BTF of it.

const (
	socketsMap       = "gadget_sockets"
	socketValueType  = "gadget_socket_value"
	enricherInterval = time.Second
)

// socketEnricherTypes returns a BTF spec holding only struct
// gadget_socket_value as the enricher lays it out (only it: other types of
// the enricher's object would compete with the kernel's as relocation
// targets), or nil when the embedded object lacks it.
var socketEnricherTypes = sync.OnceValue(func() *btf.Spec {
	elf, err := gadgets.Helper("socket_enricher")
	if err != nil {
		return nil
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(elf))
	if err != nil {
		return nil
	}
	var st *btf.Struct
	if err := spec.TypeByName(socketValueType, &st); err != nil {
		return nil
	}
	b, err := btf.NewBuilder([]btf.Type{st}, nil)
	if err != nil {
		return nil
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		return nil
	}
	out, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		return nil
	}
	return out
})

// socketEnricher is the process's one enricher: loaded by the first gadget
// that needs it, closed after the last one is done.
type socketEnricher struct {
	mu     sync.Mutex
	refs   int
	coll   *ebpf.Collection
	closer []io.Closer
	iter   *link.Iter
	cancel context.CancelFunc
	done   chan struct{}
	gen    uint64
}

var enricher socketEnricher

// acquire loads the enricher if needed and returns its map and map spec.
// Each successful acquire is paired with a release.
func (e *socketEnricher) acquire(log *slog.Logger) (*ebpf.Map, *ebpf.MapSpec, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.refs == 0 {
		if err := e.start(log); err != nil {
			return nil, nil, err
		}
	}
	e.refs++
	m := e.coll.Maps[socketsMap]
	info, err := m.Info()
	if err != nil {
		return nil, nil, err
	}
	spec := &ebpf.MapSpec{Name: socketsMap, Type: m.Type(), KeySize: m.KeySize(), ValueSize: m.ValueSize(), MaxEntries: m.MaxEntries(), Flags: info.Flags}
	return m, spec, nil
}

func (e *socketEnricher) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.refs == 0 {
		return
	}
	e.refs--
	if e.refs == 0 {
		e.stop()
	}
}

func (e *socketEnricher) start(log *slog.Logger) (err error) {
	elf, err := gadgets.Helper("socket_enricher")
	if err != nil {
		return err
	}
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf))
	if err != nil {
		return fmt.Errorf("parse the socket enricher: %w", err)
	}
	coll, err := ebpf.NewCollection(cs)
	if err != nil {
		return fmt.Errorf("load the socket enricher: %w", err)
	}
	defer func() {
		if err != nil {
			closeAll(e.closer)
			e.closer = nil
			coll.Close()
		}
	}()
	for name, ps := range cs.Programs {
		kind, target := classifySection(ps.SectionName)
		if kind == AttachIter {
			it, err := link.AttachIter(link.IterOptions{Program: coll.Programs[name]})
			if err != nil {
				return fmt.Errorf("attach the socket enricher's iterator: %w", err)
			}
			e.iter = it
			e.closer = append(e.closer, it)
			continue
		}
		l, err := attachProgram(ProgramSpec{Name: name, Section: ps.SectionName, Attach: kind, Target: target}, coll.Programs[name])
		if err != nil {
			return fmt.Errorf("attach the socket enricher's program %s: %w", name, err)
		}
		e.closer = append(e.closer, l)
	}
	e.coll = coll
	// The first sync before any gadget loads: sockets that already exist
	// are known from the first packet on.
	if err := e.sync(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go e.loop(ctx, log)
	return nil
}

func (e *socketEnricher) stop() {
	e.cancel()
	<-e.done
	closeAll(e.closer)
	e.closer, e.iter = nil, nil
	e.coll.Close()
	e.coll = nil
}

// loop resyncs every enricherInterval until stopped; it is owned by the
// enricher and stopped by stop.
func (e *socketEnricher) loop(ctx context.Context, log *slog.Logger) {
	defer close(e.done)
	t := time.NewTicker(enricherInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.mu.Lock()
			err := e.sync()
			e.mu.Unlock()
			if err != nil && log != nil {
				log.Warn("socket enricher sync failed", "error", err)
			}
		}
	}
}

// sync starts a new generation, lists every socket again, and removes the
// entries the previous two generations did not see (closed sockets).
// e.mu must be held.
func (e *socketEnricher) sync() error {
	e.gen++
	if err := e.coll.Maps["config"].Put(uint32(0), e.gen); err != nil {
		return fmt.Errorf("set the sync generation: %w", err)
	}
	r, err := e.iter.Open()
	if err != nil {
		return fmt.Errorf("run the socket iterator: %w", err)
	}
	_, err = io.Copy(io.Discard, r)
	r.Close()
	if err != nil {
		return fmt.Errorf("run the socket iterator: %w", err)
	}
	if e.gen < 3 {
		return nil
	}
	m := e.coll.Maps[socketsMap]
	var (
		key   = make([]byte, m.KeySize())
		value = make([]byte, m.ValueSize())
		stale [][]byte
	)
	genOff := enricherGenOffset()
	if genOff < 0 || genOff+8 > int(m.ValueSize()) {
		return errors.New("the socket enricher's value has no sluice_gen member")
	}
	iter := m.Iterate()
	for iter.Next(&key, &value) {
		if binary.NativeEndian.Uint64(value[genOff:]) < e.gen-1 {
			stale = append(stale, append([]byte(nil), key...))
		}
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove a closed socket: %w", err)
		}
	}
	return iter.Err()
}

// enricherGenOffset is where struct gadget_socket_value keeps the sync
// generation, -1 when it does not.
func enricherGenOffset() int {
	spec := socketEnricherTypes()
	if spec == nil {
		return -1
	}
	var st *btf.Struct
	if err := spec.TypeByName(socketValueType, &st); err != nil {
		return -1
	}
	for _, m := range st.Members {
		if m.Name == "sluice_gen" {
			return int(m.Offset / 8)
		}
	}
	return -1
}
