package wasmbpf

import (
	"sync"

	"github.com/sluice-dev/sluice/pipeline"
)

// Metric names of the wasm-bpf series, labelled {component="source",name}.
const (
	// MetricGuestErrors counts guest failures by {kind}: trap, callback,
	// exit, instantiate, limit, load, attach, stall.
	MetricGuestErrors = "sluice_wasm_bpf_guest_errors_total"
	// MetricRefusedCalls counts host calls refused for what the guest
	// passed, by {function} and {reason}: pointer (outside its memory),
	// handle, fd, callback, size, flags, command, map, target, limit.
	MetricRefusedCalls = "sluice_wasm_bpf_refused_calls_total"
	// MetricCallbacks counts records handed to the guest's callbacks.
	MetricCallbacks = "sluice_wasm_bpf_callbacks_total"
	// MetricTruncated counts records cut to the guest's poll buffer (the
	// events keep the whole record).
	MetricTruncated = "sluice_wasm_bpf_truncated_records_total"
	// MetricUndecoded counts records whose type is unknown: the guest got
	// them, no event was made.
	MetricUndecoded = "sluice_wasm_bpf_undecoded_records_total"
	// MetricLogSuppressed counts lines of the guest's output left out of
	// the log by its rate limit.
	MetricLogSuppressed = "sluice_wasm_bpf_log_lines_suppressed_total"
)

type appMetrics struct {
	c *pipeline.ComponentMetrics

	callbacks, truncated, undecoded, logSuppressed *pipeline.Counter

	mu     sync.Mutex
	errs   map[string]*pipeline.Counter
	refuse map[[2]string]*pipeline.Counter
}

// guestErrorKinds are registered at 0, so a dashboard sees every series.
var guestErrorKinds = []string{KindTrap, KindCallback, KindExit, KindInstantiate, KindLimit, KindLoad, KindAttach, KindStall}

func newAppMetrics(reg *pipeline.Registry, source string) *appMetrics {
	c := reg.Component("source", source)
	m := &appMetrics{
		c:             c,
		callbacks:     c.Counter(MetricCallbacks, "Records a wasm-bpf guest's callbacks were handed."),
		truncated:     c.Counter(MetricTruncated, "Records cut to a wasm-bpf guest's poll buffer."),
		undecoded:     c.Counter(MetricUndecoded, "Records of a wasm-bpf guest whose type is unknown (no event made)."),
		logSuppressed: c.Counter(MetricLogSuppressed, "Lines of a wasm-bpf guest's output its log rate limit left out."),
		errs:          map[string]*pipeline.Counter{},
		refuse:        map[[2]string]*pipeline.Counter{},
	}
	for _, k := range guestErrorKinds {
		m.guestErrors(k)
	}
	return m
}

func (m *appMetrics) guestErrors(kind string) *pipeline.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.errs[kind]
	if c == nil {
		c = m.c.Counter(MetricGuestErrors, "Failures of wasm-bpf guests, by kind.", "kind", kind)
		m.errs[kind] = c
	}
	return c
}

func (m *appMetrics) refused(function, reason string) *pipeline.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{function, reason}
	c := m.refuse[k]
	if c == nil {
		c = m.c.Counter(MetricRefusedCalls, "Host calls of wasm-bpf guests refused for what they passed.", "function", function, "reason", reason)
		m.refuse[k] = c
	}
	return c
}
