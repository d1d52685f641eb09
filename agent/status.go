package agent

import (
	"os"
	"slices"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
)

// Status is what `sluice ctl status` shows: the agent and every component
// of its pipelines, with state, what it runs, and its counters.
type Status struct {
	Agent         string            `json:"agent"`
	Version       string            `json:"version"`
	PID           int               `json:"pid"`
	Started       time.Time         `json:"started"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	Health        string            `json:"health"` // ok, degraded
	Failing       []string          `json:"failing,omitempty"`
	Ready         bool              `json:"ready"`
	LastReload    *ReloadResult     `json:"last_reload,omitempty"`
	Pipelines     []PipelineStatus  `json:"pipelines"`
	Time          time.Time         `json:"time"` // when the counters were read
	Extra         map[string]string `json:"extra,omitempty"`
}

// PipelineStatus is one pipeline.
type PipelineStatus struct {
	Name    string            `json:"name"`
	State   string            `json:"state"`
	Queue   QueueStatus       `json:"queue"` // the edge queue
	Counts  Counts            `json:"counts"`
	Sources []ComponentStatus `json:"sources"`
	Stages  []ComponentStatus `json:"stages"`
	Sinks   []ComponentStatus `json:"sinks"`
}

// ComponentStatus is one source, stage or sink of a pipeline.
type ComponentStatus struct {
	Name  string    `json:"name"`
	Type  string    `json:"type"` // the gadget, "wasm", the sink type
	State string    `json:"state"`
	Error string    `json:"error,omitempty"`
	Since time.Time `json:"since,omitzero"`
	// Digest is the SHA-256 of what the component runs: the gadget's ELF,
	// the stage's module; Ref is where that came from (the config value).
	Digest   string       `json:"digest,omitempty"`
	Ref      string       `json:"ref,omitempty"`
	LastSwap time.Time    `json:"last_swap,omitzero"`
	Seq      uint64       `json:"seq,omitempty"` // a source's last sequence number
	Counts   Counts       `json:"counts"`
	Queue    *QueueStatus `json:"queue,omitempty"` // a sink's queue
}

// Counts are a component's counters.
type Counts struct {
	Received uint64            `json:"received"`
	Sent     uint64            `json:"sent"`
	Dropped  uint64            `json:"dropped"`
	Errors   uint64            `json:"errors"`
	DropsBy  map[string]uint64 `json:"drops_by,omitempty"`
}

// QueueStatus is a queue's fill and limits.
type QueueStatus struct {
	Events    int    `json:"events"`
	Bytes     int    `json:"bytes"`
	MaxEvents int    `json:"max_events"`
	MaxBytes  int    `json:"max_bytes"`
	Policy    string `json:"policy"`
}

// Status reads the agent's state and counters. Safe for concurrent use.
func (a *Agent) Status() *Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	st := &Status{
		Agent: a.plan.cfg.Agent.Name, Version: a.opts.Version, PID: os.Getpid(),
		Started: a.started, Time: now, LastReload: a.lastReload,
		Health: "ok", Failing: a.health.failing(),
	}
	if !a.started.IsZero() {
		st.UptimeSeconds = now.Sub(a.started).Seconds()
	}
	a.health.mu.Lock()
	st.Ready = a.health.ready
	a.health.mu.Unlock()
	for _, pp := range a.plan.pipelines {
		lp := a.pipelines[pp.name]
		ps := PipelineStatus{Name: pp.name, State: a.health.get("pipeline", pp.name).State,
			Counts: a.counts("pipeline", pp.name), Sources: []ComponentStatus{}, Stages: []ComponentStatus{}, Sinks: []ComponentStatus{}}
		queues := map[string]pipeline.QueueStat{}
		if lp != nil {
			for _, q := range lp.p.Queues() {
				queues[q.Name] = q
			}
		}
		if q, ok := queues["pipeline."+pp.name]; ok {
			ps.Queue = queueStatus(q)
		}
		for _, name := range pp.sources {
			sp := a.plan.source(name)
			h := a.health.get("source", name)
			cs := ComponentStatus{Name: name, Type: sp.kind(), State: h.State, Error: h.Error, Since: h.Since,
				Digest: sp.digest, Ref: sp.ref(), Counts: a.counts("source", name)}
			if c := a.seqs[name]; c != nil {
				cs.Seq = c.Load()
			}
			ps.Sources = append(ps.Sources, cs)
		}
		var stages []*liveStage
		if lp != nil {
			stages = lp.stages
		}
		for _, sp := range pp.stages {
			cs := ComponentStatus{Name: sp.name, Type: "wasm", State: ps.State, Digest: sp.digest, Ref: sp.block.Wasm.Module,
				Counts: a.counts("stage", sp.name)}
			if i := slices.IndexFunc(stages, func(ls *liveStage) bool { return ls.plan == sp }); i >= 0 {
				cs.Digest = stages[i].stage.Digest()
			}
			a.stageExtra(sp.name, &cs)
			ps.Stages = append(ps.Stages, cs)
		}
		for _, name := range pp.sinks {
			sp := a.plan.sink(name)
			cs := ComponentStatus{Name: name, Type: sp.kind, State: ps.State, Counts: a.counts("sink", name)}
			if s := a.sinks[name]; s != nil {
				if hs, ok := s.Sink.(pipeline.HealthReporter); ok {
					if err := hs.Health(); err != nil {
						cs.State, cs.Error = stateFailing, err.Error()
					}
				}
			}
			if q, ok := queues["sink."+name]; ok {
				qs := queueStatus(q)
				cs.Queue = &qs
			}
			ps.Sinks = append(ps.Sinks, cs)
		}
		st.Pipelines = append(st.Pipelines, ps)
	}
	if len(st.Failing) > 0 {
		st.Health = "degraded"
	}
	return st
}

// stageExtra (stagefollow.go) fills in what the stage's version follower
// knows: the version it runs, the last swap, why a desired one does not.

func queueStatus(q pipeline.QueueStat) QueueStatus {
	return QueueStatus{Events: q.Events, Bytes: q.Bytes, MaxEvents: q.Config.MaxEvents, MaxBytes: q.Config.MaxBytes, Policy: q.Config.Policy.String()}
}

// counts reads the counters of component kind/name.
func (a *Agent) counts(kind, name string) Counts {
	c := a.metrics.Component(kind, name)
	return Counts{Received: c.Received.Value(), Sent: c.Sent.Value(), Errors: c.Errors.Value(), Dropped: c.DroppedTotal(), DropsBy: c.DroppedByReason()}
}
