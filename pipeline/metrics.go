package pipeline

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Metric names shared by every component. The label set is
// {component, name} plus {reason} for drops: every sluice series names the
// component it belongs to with these two labels (see
// ComponentMetrics.Counter), so that one selector finds all of a
// component's series.
const (
	MetricReceived = "sluice_events_received_total"
	MetricSent     = "sluice_events_sent_total"
	MetricDropped  = "sluice_events_dropped_total"
	MetricErrors   = "sluice_errors_total"
	MetricQueueLen = "sluice_queue_events"
	MetricQueueMem = "sluice_queue_bytes"
	// MetricSinkLatency is the histogram of the time from delivered
	// events' envelope time (the kernel's timestamp, where the gadget
	// records one) to the end of the sink write that delivered them, for
	// a sample of each write's events (latencySample).
	MetricSinkLatency = "sluice_sink_latency_seconds"
)

// Counter is a monotonically increasing value. Its methods are lock-free and
// safe for concurrent use.
type Counter struct{ v atomic.Uint64 }

// Add increases the counter by n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Inc increases the counter by one.
func (c *Counter) Inc() { c.v.Add(1) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge is a value that goes up and down. Its methods are lock-free and safe
// for concurrent use.
type Gauge struct{ v atomic.Int64 }

// Set stores v.
func (g *Gauge) Set(v int64) { g.v.Store(v) }

// Add adds d (which may be negative).
func (g *Gauge) Add(d int64) { g.v.Add(d) }

// Value returns the current value.
func (g *Gauge) Value() int64 { return g.v.Load() }

type metricType uint8

const (
	typeCounter metricType = iota
	typeGauge
	typeHistogram
)

func (t metricType) String() string {
	switch t {
	case typeGauge:
		return "gauge"
	case typeHistogram:
		return "histogram"
	}
	return "counter"
}

type series struct {
	labels  string   // rendered {k="v",...}, keys sorted; "" when unlabelled
	pairs   []string // the label pairs labels was rendered from
	counter *Counter
	gauge   *Gauge
	hist    *Histogram
}

// durationBuckets are the upper bounds of a Histogram's buckets: from 10µs
// (a small Wasm batch) to 1s (far past any sane per-batch deadline).
var durationBuckets = [...]time.Duration{
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, time.Second,
}

// latencyBuckets are the upper bounds of the end-to-end latency histograms
// (sluice_sink_latency_seconds): from 250µs to 10s, finer where a healthy
// pipeline's events fall (the readers' poll interval and the batch delay
// are milliseconds).
var latencyBuckets = [...]time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond,
	2 * time.Millisecond, 3 * time.Millisecond, 4 * time.Millisecond,
	5 * time.Millisecond, 7500 * time.Microsecond, 10 * time.Millisecond,
	15 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond,
	50 * time.Millisecond, 75 * time.Millisecond, 100 * time.Millisecond,
	150 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// maxBuckets is the most bounds a Histogram has.
const maxBuckets = max(len(durationBuckets), len(latencyBuckets))

// Histogram counts durations in fixed buckets (by default 10µs to 1s, 1-2.5-5
// steps) and keeps their sum, rendered in seconds as a Prometheus
// histogram. Observe is lock-free and safe for concurrent use; a reader may
// see a sum and counts from slightly different moments.
type Histogram struct {
	bounds  []time.Duration
	buckets [maxBuckets + 1]atomic.Uint64 // buckets[len(bounds)] is +Inf; not cumulative
	sumNS   atomic.Uint64
	count   atomic.Uint64
}

// Observe records one duration; negative durations count as zero.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	h.buckets[h.bucket(d)].Add(1)
	h.sumNS.Add(uint64(d))
	h.count.Add(1)
}

func (h *Histogram) bucket(d time.Duration) int {
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	return i
}

// observeSince records, for a sample of the events of evs (latencySample
// of them, evenly spaced, first and last included), the time from their
// envelope time to now (Unix nanoseconds), with one atomic add per bucket
// touched: sink writers call it once per write. Loss records and events
// whose time does not parse are left out.
func (h *Histogram) observeSince(now int64, evs []Event) {
	var counts [maxBuckets + 1]uint64
	var sum, n uint64
	k := min(len(evs), latencySample)
	for j := range k {
		i := 0
		if k > 1 {
			i = j * (len(evs) - 1) / (k - 1)
		}
		ev := &evs[i]
		if ev.Kind() == KindLoss {
			continue
		}
		t, ok := envelopeTime(ev.Data)
		if !ok {
			continue
		}
		d := max(time.Duration(now-t), 0)
		counts[h.bucket(d)]++
		sum += uint64(d)
		n++
	}
	if n == 0 {
		return
	}
	for i := range len(h.bounds) + 1 {
		if counts[i] > 0 {
			h.buckets[i].Add(counts[i])
		}
	}
	h.sumNS.Add(sum)
	h.count.Add(n)
}

// latencySample is how many events of a write the latency histogram
// samples: reading an event's time costs a lookup and a parse.
const latencySample = 16

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Sum returns the sum of the observed durations.
func (h *Histogram) Sum() time.Duration { return time.Duration(h.sumNS.Load()) }

type family struct {
	name   string
	help   string
	typ    metricType
	series map[string]*series
}

// Registry holds named, labelled counters and gauges and renders them in the
// Prometheus text exposition format. All methods are safe for concurrent use;
// registration takes a lock, updates to the returned counters and gauges do
// not.
type Registry struct {
	mu         sync.Mutex
	families   map[string]*family
	components map[[2]string]*ComponentMetrics
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{
		families:   make(map[string]*family),
		components: make(map[[2]string]*ComponentMetrics),
	}
}

// Counter returns the counter called name with the given label pairs
// (key, value, key, value, ...), creating it on first use. Asking again with
// the same name and labels returns the same counter. It panics on an odd
// number of label arguments or when name is already registered as a gauge:
// both are programming errors, not user input. Safe for concurrent use.
func (r *Registry) Counter(name, help string, labels ...string) *Counter {
	return r.get(name, help, typeCounter, labels).counter
}

// Gauge is Counter for gauges. Safe for concurrent use.
func (r *Registry) Gauge(name, help string, labels ...string) *Gauge {
	return r.get(name, help, typeGauge, labels).gauge
}

// Histogram is Counter for duration histograms (see Histogram). The label
// "le" is reserved for the buckets. Safe for concurrent use.
func (r *Registry) Histogram(name, help string, labels ...string) *Histogram {
	return r.get(name, help, typeHistogram, labels).hist
}

// latencyHistogram is Histogram with the buckets of latencyBuckets.
func (r *Registry) latencyHistogram(name, help string, labels ...string) *Histogram {
	return r.getWith(name, help, typeHistogram, latencyBuckets[:], labels).hist
}

func (r *Registry) get(name, help string, typ metricType, labels []string) *series {
	return r.getWith(name, help, typ, durationBuckets[:], labels)
}

// getWith is get; bounds are the buckets of a histogram it creates.
func (r *Registry) getWith(name, help string, typ metricType, bounds []time.Duration, labels []string) *series {
	key := renderLabels(labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.families[name]
	if f == nil {
		f = &family{name: name, help: help, typ: typ, series: make(map[string]*series)}
		r.families[name] = f
	}
	if f.typ != typ {
		panic(fmt.Sprintf("pipeline: metric %s registered as %s, requested as %s", name, f.typ, typ))
	}
	s := f.series[key]
	if s == nil {
		s = &series{labels: key, pairs: slices.Clone(labels)}
		switch typ {
		case typeGauge:
			s.gauge = new(Gauge)
		case typeHistogram:
			s.hist = &Histogram{bounds: bounds}
		default:
			s.counter = new(Counter)
		}
		f.series[key] = s
	}
	return s
}

// Remove deletes the series called name with the given label pairs, if
// any: for series that describe a state that ended (an info series of a
// version no longer running). Holders of the removed counter or gauge may
// go on updating it; it is no longer rendered. Safe for concurrent use.
func (r *Registry) Remove(name string, labels ...string) {
	key := renderLabels(labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.families[name]; f != nil {
		delete(f.series, key)
	}
}

// renderLabels renders label pairs sorted by key, so that the same set given
// in any order names the same series.
func renderLabels(labels []string) string {
	if len(labels)%2 != 0 {
		panic(fmt.Sprintf("pipeline: odd number of label arguments %q", labels))
	}
	if len(labels) == 0 {
		return ""
	}
	idx := make([]int, 0, len(labels)/2)
	for i := 0; i < len(labels); i += 2 {
		idx = append(idx, i)
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(labels[a], labels[b]) })
	var b strings.Builder
	b.WriteByte('{')
	for n, i := range idx {
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(labels[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// WriteTo writes every series in the Prometheus text exposition format
// (version 0.0.4), families and series in a stable sorted order. Safe for
// concurrent use.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	for _, f := range r.sortedFamilies() {
		if len(f.series) == 0 {
			continue
		}
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", f.name, helpEscaper.Replace(f.help), f.name, f.typ)
		for _, s := range f.series {
			s.each(f.name, func(name, labels, value string) {
				bw.WriteString(name)
				bw.WriteString(labels)
				bw.WriteByte(' ')
				bw.WriteString(value)
				bw.WriteByte('\n')
			})
		}
	}
	// bufio.Writer's error is sticky, so checking once at the end is enough.
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write metrics: %w", err)
	}
	return cw.n, nil
}

// frozenFamily is a copy of a family's series list taken under the lock, so
// rendering does not hold the registry lock while writing to a slow client.
type frozenFamily struct {
	name, help string
	typ        metricType
	series     []*series
}

func (r *Registry) sortedFamilies() []frozenFamily {
	r.mu.Lock()
	out := make([]frozenFamily, 0, len(r.families))
	for _, f := range r.families {
		ff := frozenFamily{name: f.name, help: f.help, typ: f.typ, series: make([]*series, 0, len(f.series))}
		for _, s := range f.series {
			ff.series = append(ff.series, s)
		}
		out = append(out, ff)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b frozenFamily) int { return strings.Compare(a.name, b.name) })
	for _, f := range out {
		slices.SortFunc(f.series, func(a, b *series) int { return strings.Compare(a.labels, b.labels) })
	}
	return out
}

// each calls fn with every sample of the series: one for a counter or a
// gauge; the cumulative buckets, the sum and the count for a histogram.
func (s *series) each(name string, fn func(name, labels, value string)) {
	switch {
	case s.gauge != nil:
		fn(name, s.labels, strconv.FormatInt(s.gauge.Value(), 10))
	case s.hist != nil:
		var cum uint64
		for i := range len(s.hist.bounds) + 1 {
			cum += s.hist.buckets[i].Load()
			le := "+Inf"
			if i < len(s.hist.bounds) {
				le = strconv.FormatFloat(s.hist.bounds[i].Seconds(), 'g', -1, 64)
			}
			fn(name+"_bucket", renderLabels(append(slices.Clip(s.pairs), "le", le)), strconv.FormatUint(cum, 10))
		}
		fn(name+"_sum", s.labels, strconv.FormatFloat(s.hist.Sum().Seconds(), 'g', -1, 64))
		fn(name+"_count", s.labels, strconv.FormatUint(s.hist.Count(), 10))
	default:
		fn(name, s.labels, strconv.FormatUint(s.counter.Value(), 10))
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Handler serves the registry at /metrics in the Prometheus text format.
// Safe for concurrent use.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = r.WriteTo(w) // the client went away; nothing to report to it
	})
}

// FamilySnapshot is a metric family as Gather returns it.
type FamilySnapshot struct {
	Name, Help string
	Type       string // "counter", "gauge" or "histogram"
	Series     []SeriesSnapshot
}

// SeriesSnapshot is one series of a family: Value for a counter or a
// gauge; Buckets (cumulative, by upper bound in seconds, without +Inf),
// Count and Sum (seconds) for a histogram.
type SeriesSnapshot struct {
	Labels  []string // key, value, key, value, ...
	Value   float64
	Buckets []BucketSnapshot
	Count   uint64
	Sum     float64
}

// BucketSnapshot is a cumulative histogram bucket.
type BucketSnapshot struct {
	UpperBound float64 // seconds
	Count      uint64
}

// Gather returns every family with its series, sorted by name and labels,
// for exporters (the agent's Prometheus endpoint). Safe for concurrent
// use; values are read one by one, not atomically as a set.
func (r *Registry) Gather() []FamilySnapshot {
	fams := r.sortedFamilies()
	out := make([]FamilySnapshot, 0, len(fams))
	for _, f := range fams {
		fs := FamilySnapshot{Name: f.name, Help: f.help, Type: f.typ.String(), Series: make([]SeriesSnapshot, 0, len(f.series))}
		for _, s := range f.series {
			ss := SeriesSnapshot{Labels: slices.Clone(s.pairs)}
			switch {
			case s.gauge != nil:
				ss.Value = float64(s.gauge.Value())
			case s.hist != nil:
				var cum uint64
				for i, b := range s.hist.bounds {
					cum += s.hist.buckets[i].Load()
					ss.Buckets = append(ss.Buckets, BucketSnapshot{UpperBound: b.Seconds(), Count: cum})
				}
				ss.Count = s.hist.Count()
				ss.Sum = s.hist.Sum().Seconds()
			default:
				ss.Value = float64(s.counter.Value())
			}
			fs.Series = append(fs.Series, ss)
		}
		out = append(out, fs)
	}
	return out
}

// Snapshot maps each series, written as in the exposition format
// (`name{k="v",...}`, keys sorted), to its current value. A histogram
// appears as its samples: name_bucket{...,le="..."}, name_sum (seconds) and
// name_count.
type Snapshot map[string]float64

// Snapshot returns the current value of every series. Safe for concurrent
// use; values are read one by one, not atomically as a set.
func (r *Registry) Snapshot() Snapshot {
	out := make(Snapshot)
	for _, f := range r.sortedFamilies() {
		for _, s := range f.series {
			s.each(f.name, func(name, labels, value string) {
				v, _ := strconv.ParseFloat(value, 64) // rendered by each, so it parses
				out[name+labels] = v
			})
		}
	}
	return out
}

// Get returns the value of the series name with the given label pairs, in
// any order, and 0 when there is no such series.
func (s Snapshot) Get(name string, labels ...string) float64 {
	return s[name+renderLabels(labels)]
}

// ComponentMetrics are the counters every pipeline component keeps. The
// invariant Received = Sent + sum(Dropped) holds once the component has
// stopped. All methods are safe for concurrent use.
type ComponentMetrics struct {
	Received *Counter // events that reached the component
	Sent     *Counter // events the component passed on
	Errors   *Counter // failed operations (not events): source, stage or sink errors

	reg     *Registry
	kind    string
	name    string
	dropped sync.Map // reason -> *Counter
}

// Component returns the metrics of the component kind/name ("source"/"exec",
// "sink"/"console"), creating them on first use. Safe for concurrent use.
func (r *Registry) Component(kind, name string) *ComponentMetrics {
	r.mu.Lock()
	c := r.components[[2]string{kind, name}]
	r.mu.Unlock()
	if c != nil {
		return c
	}
	c = &ComponentMetrics{
		Received: r.Counter(MetricReceived, "Events that reached a component.", "component", kind, "name", name),
		Sent:     r.Counter(MetricSent, "Events a component passed on.", "component", kind, "name", name),
		Errors:   r.Counter(MetricErrors, "Failed operations of a component.", "component", kind, "name", name),
		reg:      r,
		kind:     kind,
		name:     name,
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev := r.components[[2]string{kind, name}]; prev != nil {
		return prev
	}
	r.components[[2]string{kind, name}] = c
	return c
}

// Counter returns a counter of the component: the series name{component,
// name, labels...}. Components register their own series through it (and
// Gauge, Histogram) so that every series carries the same two labels.
// Safe for concurrent use.
func (c *ComponentMetrics) Counter(name, help string, labels ...string) *Counter {
	return c.reg.Counter(name, help, c.labels(labels)...)
}

// Gauge is Counter for gauges. Safe for concurrent use.
func (c *ComponentMetrics) Gauge(name, help string, labels ...string) *Gauge {
	return c.reg.Gauge(name, help, c.labels(labels)...)
}

// Histogram is Counter for duration histograms. Safe for concurrent use.
func (c *ComponentMetrics) Histogram(name, help string, labels ...string) *Histogram {
	return c.reg.Histogram(name, help, c.labels(labels)...)
}

func (c *ComponentMetrics) labels(extra []string) []string {
	return append([]string{"component", c.kind, "name", c.name}, extra...)
}

// DropReasons pre-registers the drop counters of reasons at zero, so that
// a component's series exist from its start: an alert on a rate sees 0,
// not "no data". Safe for concurrent use.
func (c *ComponentMetrics) DropReasons(reasons ...string) {
	for _, r := range reasons {
		c.Dropped(r)
	}
}

// Kind returns the component kind the metrics were registered with.
func (c *ComponentMetrics) Kind() string { return c.kind }

// Name returns the component name the metrics were registered with.
func (c *ComponentMetrics) Name() string { return c.name }

// Dropped returns the drop counter for reason. The counter is cached: the
// lookup is lock-free after the first call for a reason, and hot paths can
// keep the returned pointer. Safe for concurrent use.
func (c *ComponentMetrics) Dropped(reason string) *Counter {
	if v, ok := c.dropped.Load(reason); ok {
		return v.(*Counter)
	}
	ctr := c.reg.Counter(MetricDropped, "Events a component dropped, by reason.",
		"component", c.kind, "name", c.name, "reason", reason)
	v, _ := c.dropped.LoadOrStore(reason, ctr)
	return v.(*Counter)
}

// DroppedByReason returns the non-zero drop counts by reason. Safe for
// concurrent use.
func (c *ComponentMetrics) DroppedByReason() map[string]uint64 {
	var out map[string]uint64
	c.dropped.Range(func(k, v any) bool {
		if n := v.(*Counter).Value(); n > 0 {
			if out == nil {
				out = map[string]uint64{}
			}
			out[k.(string)] = n
		}
		return true
	})
	return out
}

// DroppedTotal sums the drop counters over all reasons. Safe for concurrent
// use.
func (c *ComponentMetrics) DroppedTotal() uint64 {
	var n uint64
	c.dropped.Range(func(_, v any) bool {
		n += v.(*Counter).Value()
		return true
	})
	return n
}
