package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources/decode"
)

// Periodic outputs: iterators (a snapshot per run of their iter programs)
// and map iterators (a drain of a hash map per interval). Each run is
// emitted as one batch whose events share the run's number (key snapshot)
// and carry the run's row count (snapshot_rows), so a consumer can tell
// where one snapshot ends and the next begins even when stages drop rows
// or other events interleave.

// maxSnapshotBytes bounds what one iter program may write in one run.
const maxSnapshotBytes = 256 << 20

type periodicOutput struct {
	name string
	plan *decode.Plan
	snap *SnapshotSpec // an iterator, or
	mi   *MapIterSpec  // a map iterator
	size int           // bytes per row (element, or key and value)

	iters []iterLink // attached by Open
	m     *ebpf.Map  // the map iterator's map, set by Open
	runs  uint64     // snapshots taken so far
}

type iterLink struct {
	prog ProgramSpec
	link *link.Iter
}

func (g *Gadget) newPeriodic() error {
	opts := decode.Options{Gadget: g.spec.Name, Source: g.cfg.Source, Host: g.cfg.Host, Stacks: g.stacks, Snapshot: true, Fields: g.spec.fields}
	for i := range g.spec.Snapshots {
		s := &g.spec.Snapshots[i]
		plan, err := decode.Compile(s.EventType, opts)
		if err != nil {
			return fieldsError(fmt.Errorf("gadget %q iterator %q: %w", g.spec.Name, s.Name, err))
		}
		g.spec.annotateSchema(s.Name, plan.Schema())
		g.periodic = append(g.periodic, &periodicOutput{name: s.Name, plan: plan, snap: s, size: int(s.EventType.Size)})
	}
	for i := range g.spec.MapIters {
		mi := &g.spec.MapIters[i]
		plan, err := decode.Compile(mi.EventType, opts)
		if err != nil {
			return fieldsError(fmt.Errorf("gadget %q map iterator %q (map %s): %w", g.spec.Name, mi.Name, mi.Map, err))
		}
		g.spec.annotateSchema(mi.Name, plan.Schema())
		g.periodic = append(g.periodic, &periodicOutput{name: mi.Name, plan: plan, mi: mi, size: mi.KeySize + mi.ValueSize})
	}
	return nil
}

// iteratorPrograms maps each iter program to the iterator that runs it.
func (g *Gadget) iteratorPrograms() map[string]*periodicOutput {
	out := map[string]*periodicOutput{}
	for _, po := range g.periodic {
		if po.snap == nil {
			continue
		}
		for _, p := range po.snap.Programs {
			out[p] = po
		}
	}
	return out
}

func (g *Gadget) hasIterators() bool {
	for _, po := range g.periodic {
		if po.mi != nil || len(po.iters) > 0 {
			return true
		}
	}
	return false
}

// openPeriodic finds the map iterators' maps once the collection is loaded.
func (g *Gadget) openPeriodic() error {
	for _, po := range g.periodic {
		if po.mi != nil {
			po.m = g.coll.Maps[po.mi.Map]
			if po.m == nil {
				return fmt.Errorf("gadget %q map iterator %q: map %s was not loaded", g.spec.Name, po.name, po.mi.Map)
			}
			continue
		}
		if len(po.iters) == 0 {
			g.log.Warn("iterator has no program running; it yields no snapshots", "iterator", po.name)
		}
	}
	return nil
}

// runPeriodic runs every iterator and map iterator until ctx ends or each
// has taken its runs.
func (g *Gadget) runPeriodic(ctx context.Context, out pipeline.Emitter) error {
	var grp errgroup.Group
	for _, po := range g.periodic {
		if po.snap != nil && len(po.iters) == 0 {
			continue
		}
		grp.Go(func() error { return g.runOutput(ctx, po, out) })
	}
	return grp.Wait()
}

func (g *Gadget) runOutput(ctx context.Context, po *periodicOutput, out pipeline.Emitter) error {
	interval := g.cfg.Interval
	if po.mi != nil && interval <= 0 {
		interval = DefaultMapInterval
	}
	take := func(emitCtx context.Context) error {
		rows, err := g.collect(po)
		if err != nil {
			return fmt.Errorf("gadget %q %s: %w", g.spec.Name, po.describe(), err)
		}
		return g.emitSnapshot(emitCtx, po, rows, out)
	}
	// An iterator takes its first snapshot at once; a map iterator's
	// first drain comes after one interval, once it has data.
	if po.snap != nil {
		if err := take(ctx); err != nil {
			return err
		}
		if interval <= 0 || (g.cfg.Runs > 0 && po.runs >= uint64(g.cfg.Runs)) {
			return nil
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if po.mi == nil {
				return nil
			}
			// What the map gathered since the last drain is not lost on
			// stop: drain it once more, within the drain deadline.
			drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
			defer cancel()
			return take(drainCtx)
		case <-t.C:
			if err := take(ctx); err != nil {
				return err
			}
			if g.cfg.Runs > 0 && po.runs >= uint64(g.cfg.Runs) {
				return nil
			}
		}
	}
}

func (po *periodicOutput) describe() string {
	if po.mi != nil {
		return fmt.Sprintf("map iterator %q (map %s)", po.name, po.mi.Map)
	}
	return fmt.Sprintf("iterator %q", po.name)
}

// collect reads one snapshot: the records of every iter program, or the
// entries drained from the map.
func (g *Gadget) collect(po *periodicOutput) ([][]byte, error) {
	if po.mi != nil {
		return drainMap(po.m, po.mi.KeySize, po.mi.ValueSize)
	}
	var rows [][]byte
	for _, it := range po.iters {
		namespaces := []string{""}
		if it.prog.Target == "tcp" || it.prog.Target == "udp" {
			// Socket iterators list the namespace of whoever opens them.
			namespaces = netnsList(g.cfg.NetNS)
		}
		for _, ns := range namespaces {
			var buf []byte
			err := inNetNS(ns, func() error {
				var err error
				buf, err = readIterator(it.link)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("run iter program %s in %s: %w", it.prog.Name, nsName(ns), err)
			}
			if len(buf)%po.size != 0 {
				return nil, fmt.Errorf("iter program %s wrote %d bytes, not a whole number of struct %s (%d bytes each); write each element with one bpf_seq_write(seq, &elem, sizeof(elem))", it.prog.Name, len(buf), po.snap.EventType.Name, po.size)
			}
			for off := 0; off < len(buf); off += po.size {
				rows = append(rows, buf[off:off+po.size:off+po.size])
			}
		}
	}
	return rows, nil
}

func readIterator(it *link.Iter) ([]byte, error) {
	r, err := it.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	buf, err := io.ReadAll(io.LimitReader(r, maxSnapshotBytes+1))
	if err != nil {
		return nil, err
	}
	if len(buf) > maxSnapshotBytes {
		return nil, fmt.Errorf("output exceeds %d MiB", maxSnapshotBytes>>20)
	}
	return buf, nil
}

// drainMap takes every entry out of a hash map: keys first, then each is
// looked up and deleted in one step, so an update racing the drain lands
// either in this snapshot or in the next, never in neither.
func drainMap(m *ebpf.Map, keySize, valueSize int) ([][]byte, error) {
	limit := int(m.MaxEntries())
	var keys [][]byte
	var prev []byte
	for len(keys) < limit {
		next := make([]byte, keySize)
		var err error
		if prev == nil {
			err = m.NextKey(nil, &next)
		} else {
			err = m.NextKey(prev, &next)
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		keys = append(keys, next)
		prev = next
	}
	rows := make([][]byte, 0, len(keys))
	for _, k := range keys {
		row := make([]byte, keySize+valueSize)
		copy(row, k)
		value := row[keySize:]
		if err := m.LookupAndDelete(k, &value); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				continue // evicted (LRU) since it was listed
			}
			return nil, fmt.Errorf("take entry: %w", err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// emitSnapshot encodes one snapshot's rows and hands them over as one
// batch. An empty snapshot emits nothing.
func (g *Gadget) emitSnapshot(ctx context.Context, po *periodicOutput, rows [][]byte, out pipeline.Emitter) error {
	po.runs++
	if len(rows) == 0 {
		return nil
	}
	schema := po.plan.Schema()
	now := time.Now()
	arena := make([]byte, 0, len(rows)*(po.plan.Size()+256))
	batch := make([]pipeline.Event, 0, len(rows))
	for _, rec := range rows {
		seq := g.seq.Add(1)
		start := len(arena)
		arena = po.plan.AppendSnapshot(arena, rec, seq, now, po.runs, uint64(len(rows)))
		batch = append(batch, pipeline.Event{Data: arena[start:len(arena):len(arena)], Schema: schema, Source: g.cfg.Source, Seq: seq, MntNS: uint32(po.plan.MntNS(rec))})
	}
	if err := out.Emit(ctx, batch); err != nil && ctx.Err() == nil {
		return fmt.Errorf("gadget %q %s: emit: %w", g.spec.Name, po.describe(), err)
	}
	return nil
}
