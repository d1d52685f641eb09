package agent

import (
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/wasmstages"
)

// metricsHandler serves /metrics with the Prometheus client library: the
// components' series (reg), sluice_build_info{version,revision,goversion},
// and the client's Go runtime
// (go_*) and process (process_*) collectors, with the content negotiation
// (text or OpenMetrics) Prometheus servers expect.
//
// Uncompressed: the agent's page is some 25 KB, and gzip took a 1.5 MB
// compressor per scrape (promhttp pools it, but the pool empties within a
// couple of collections, so every scrape allocated it again), more than
// the page and all its other garbage; 25 KB every scrape interval is
// nothing for the network.
func metricsHandler(reg *pipeline.Registry, version, commit string) http.Handler {
	pr := prometheus.NewRegistry()
	pr.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_build_info",
			Help: "The version of sluice running (always 1).",
			ConstLabels: prometheus.Labels{
				"version":   orUnknown(version),
				"revision":  orUnknown(commit),
				"goversion": runtime.Version(),
			},
		}, func() float64 { return 1 }),
		registryCollector{reg},
	)
	return promhttp.HandlerFor(pr, promhttp.HandlerOpts{EnableOpenMetrics: true, DisableCompression: true})
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// registryCollector exports a pipeline.Registry to the Prometheus client.
// It is unchecked (Describe sends nothing): the series follow the config.
type registryCollector struct{ reg *pipeline.Registry }

func (registryCollector) Describe(chan<- *prometheus.Desc) {}

func (c registryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.reg.Gather() {
		for _, s := range f.Series {
			keys := make([]string, 0, len(s.Labels)/2)
			values := make([]string, 0, len(s.Labels)/2)
			for i := 0; i+1 < len(s.Labels); i += 2 {
				keys = append(keys, s.Labels[i])
				values = append(values, s.Labels[i+1])
			}
			desc := prometheus.NewDesc(f.Name, f.Help, keys, nil)
			var m prometheus.Metric
			var err error
			switch f.Type {
			case "gauge":
				m, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, s.Value, values...)
			case "histogram":
				buckets := make(map[float64]uint64, len(s.Buckets))
				for _, b := range s.Buckets {
					buckets[b.UpperBound] = b.Count
				}
				m, err = prometheus.NewConstHistogram(desc, s.Count, s.Sum, buckets, values...)
			default:
				m, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, s.Value, values...)
			}
			if err != nil {
				m = prometheus.NewInvalidMetric(desc, err)
			}
			ch <- m
		}
	}
}

// registerPlanned registers at zero every series the planned components
// can emit, so that /metrics has them from the agent's start rather than
// from their first event or their creation in Run: an alert on a rate
// sees 0, not "no data". The live components register the same series
// again (pipeline.DropReasonsReporter, ErrorKindsReporter), which finds
// these.
func registerPlanned(reg *pipeline.Registry, p *plan) {
	queueDrops := []string{pipeline.ReasonQueueFull, pipeline.ReasonShutdown}
	for _, s := range p.sources {
		reg.Component("source", s.name).DropReasons(pipeline.ReasonKernel)
		if s.wasm != nil {
			reg.StageMeter(gadgetModuleName(s.name)).ErrorKinds(wasmstages.ErrorKinds()...)
		}
	}
	for _, s := range p.sinks {
		m := reg.Component("sink", s.name)
		m.QueueGauges()
		m.DropReasons(append(queueDrops, pipeline.ReasonSinkError)...)
		m.DropReasons(sinks.DropReasons(s.kind)...)
	}
	for _, pp := range p.pipelines {
		m := reg.Component("pipeline", pp.name)
		m.QueueGauges()
		m.DropReasons(queueDrops...)
		for _, st := range pp.stages {
			sm := reg.StageMeter(st.name)
			sm.ErrorKinds(wasmstages.ErrorKinds()...)
			sm.M.DropReasons(pipeline.ReasonStageError, pipeline.ReasonDeadLetter)
			registerStageVersions(reg, st, hasControl(p.cfg))
		}
	}
}
