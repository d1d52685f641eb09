package wasmstages

import (
	"context"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// IG's well-known data source "containers" tells a module of containers
// as they start and stop: one event per container and change, with IG's
// fields. The host feeds it (ContainerEvent); its events go to the
// module's subscriptions only, never on to sinks, as in IG, where it is
// not shown by default either.

// IGContainersDataSource is the name of the containers data source.
const IGContainersDataSource = "containers"

// Event types of the containers data source (IG's).
const (
	IGContainerCreated = "CREATED"
	IGContainerDeleted = "DELETED"
)

// igHostOutput marks a data source the host feeds (containers): neither
// one of the gadget's outputs nor the module's own.
const igHostOutput = -2

// containersSchema is the containers data source's fields, IG's names and
// kinds.
var containersSchema = &pipeline.Schema{Type: IGContainersDataSource, Fields: []pipeline.Field{
	{Name: "event_type", Kind: pipeline.FieldString},
	{Name: "container_id", Kind: pipeline.FieldString},
	{Name: "cgroup_id", Kind: pipeline.FieldUint},
	{Name: "mntns_id", Kind: pipeline.FieldUint},
	{Name: "name", Kind: pipeline.FieldString},
	{Name: "container_config", Kind: pipeline.FieldString},
	{Name: "pid", Kind: pipeline.FieldUint},
}}

// IGContainer is a container as the containers data source reports it.
type IGContainer struct {
	ID   string
	Name string // the Kubernetes container name for a pod's, else the runtime's
	// Config is the container's OCI configuration (JSON), "" when the
	// runtime does not give it.
	Config   string
	CgroupID uint64 // cgroup v2 id; 0 when unknown
	MntNS    uint64
	PID      uint32 // its first process
}

func (c IGContainer) event(typ string) []byte {
	b := codec.AppendMapHeader(nil, len(containersSchema.Fields))
	str := func(k, v string) { b = codec.AppendString(codec.AppendString(b, k), v) }
	num := func(k string, v uint64) { b = codec.AppendUint(codec.AppendString(b, k), v) }
	str("event_type", typ)
	str("container_id", c.ID)
	num("cgroup_id", c.CgroupID)
	num("mntns_id", c.MntNS)
	str("name", c.Name)
	str("container_config", c.Config)
	num("pid", uint64(c.PID))
	return b
}

// containersDataSource returns the host's containers data source; nil
// when the gadget has an output of that name (which the module then sees
// instead).
func (m *IGModule) containersDataSource() *igDataSource {
	ds := m.dsByName(IGContainersDataSource)
	if ds == nil || ds.output != igHostOutput {
		return nil
	}
	return ds
}

// WantsContainers reports whether the module subscribes to the containers
// data source (in gadgetInit, gadgetPreStart or gadgetStart): the caller
// then feeds it with ContainerEvent.
func (m *IGModule) WantsContainers() bool {
	s := m.stage
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := m.containersDataSource()
	return ds != nil && len(ds.subs) > 0
}

// ContainerEvent delivers a container event (IGContainerCreated or
// IGContainerDeleted) to the module's subscriptions of the containers
// data source, under the module's deadline. What the module emits meanwhile
// is kept for Flush. A failure is a *pipeline.StageError, and the instance
// is replaced before the next call, as after a batch.
func (m *IGModule) ContainerEvent(ctx context.Context, typ string, c IGContainer) error {
	s := m.stage
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	ds := m.containersDataSource()
	if ds == nil || len(ds.subs) == 0 {
		return nil
	}
	v := s.cur
	inst, err := s.slot(ctx, v, 0)
	if err != nil {
		return err
	}
	m.batch = &igBatch{cur: -1, deadline: time.Now().Add(s.cfg.Timeout), ctx: ctx, inst: inst}
	err = m.dispatchData(&igData{ds: ds, in: -1, orig: c.event(typ)}, -1)
	m.batch = nil
	if inst.broken {
		s.discard(ctx, v, 0, err)
	}
	return err
}
