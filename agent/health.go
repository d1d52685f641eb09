package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
)

// Component states, as status and /healthz report them.
const (
	stateStarting = "starting"
	stateRunning  = "running"
	stateFailing  = "failing" // it failed and the agent is trying again
	stateStopping = "stopping"
	stateStopped  = "stopped"
)

// health is the state of every component, updated when it changes (not
// at shutdown), for /healthz, /readyz and `sluice ctl status`. Safe for
// concurrent use.
type health struct {
	mu    sync.Mutex
	comps map[[2]string]*componentHealth
	ready bool // every pipeline of the config runs
}

type componentHealth struct {
	State string    `json:"state"`
	Error string    `json:"error,omitempty"`
	Since time.Time `json:"since"`
}

func newHealth() *health { return &health{comps: map[[2]string]*componentHealth{}} }

func (h *health) set(kind, name, state, errText string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.comps[[2]string{kind, name}]
	if c != nil && c.State == state && c.Error == errText {
		return
	}
	h.comps[[2]string{kind, name}] = &componentHealth{State: state, Error: errText, Since: time.Now()}
}

func (h *health) get(kind, name string) componentHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.comps[[2]string{kind, name}]; c != nil {
		return *c
	}
	return componentHealth{State: stateStarting}
}

func (h *health) forget(kind, name string) {
	h.mu.Lock()
	delete(h.comps, [2]string{kind, name})
	h.mu.Unlock()
}

func (h *health) setReady(ready bool) {
	h.mu.Lock()
	h.ready = ready
	h.mu.Unlock()
}

// failing lists "kind name: error" for every failing component, sorted.
func (h *health) failing() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for k, c := range h.comps {
		if c.State == stateFailing {
			out = append(out, fmt.Sprintf("%s %s: %s", k[0], k[1], c.Error))
		}
	}
	slices.Sort(out)
	return out
}

// HealthReport is the body of /healthz and /readyz with ?format=json.
type HealthReport struct {
	Status  string   `json:"status"` // ok, degraded; ready, not_ready
	Failing []string `json:"failing,omitempty"`
}

// healthz answers 200 "ok" while no component is failing, 503 "degraded"
// with the failing components otherwise. A degraded agent still runs
// (a failed source is being restarted, a sink reconnects): point alerts
// and readiness at it, not a liveness probe (use /livez).
func (a *Agent) healthz(w http.ResponseWriter, r *http.Request) {
	rep := HealthReport{Status: "ok", Failing: a.health.failing()}
	if sinks := a.unhealthySinks(); len(sinks) > 0 {
		rep.Failing = append(rep.Failing, sinks...)
	}
	code := http.StatusOK
	if len(rep.Failing) > 0 {
		rep.Status, code = "degraded", http.StatusServiceUnavailable
	}
	writeHealth(w, r, code, rep)
}

// readyz answers 200 once every pipeline runs, 503 before (starting) and
// after (stopping).
func (a *Agent) readyz(w http.ResponseWriter, r *http.Request) {
	a.health.mu.Lock()
	ready := a.health.ready
	a.health.mu.Unlock()
	rep, code := HealthReport{Status: "ready"}, http.StatusOK
	if !ready {
		rep.Status, code = "not_ready", http.StatusServiceUnavailable
	}
	writeHealth(w, r, code, rep)
}

func writeHealth(w http.ResponseWriter, r *http.Request, code int, rep HealthReport) {
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(rep)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, rep.Status)
	if len(rep.Failing) > 0 {
		fmt.Fprintln(w, strings.Join(rep.Failing, "\n"))
	}
}

// unhealthySinks lists "sink NAME: problem" for the sinks that report one
// (pipeline.HealthReporter: a NATS sink not connected or replaying its
// spool, a stdout nobody reads).
func (a *Agent) unhealthySinks() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, sp := range a.plan.sinks {
		s := a.sinks[sp.name]
		if s == nil {
			continue
		}
		if hs, ok := s.Sink.(pipeline.HealthReporter); ok {
			if err := hs.Health(); err != nil {
				out = append(out, fmt.Sprintf("sink %s: %v", sp.name, err))
			}
		}
	}
	return out
}
