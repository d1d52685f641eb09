package agent

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/wasmstages"
)

// scrapeMetrics reads /metrics as Prometheus does and checks it: promlint
// finds no problem, and every sluice series but sluice_build_info names
// its component with the labels component and name.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, body)
	}
	problems, err := promlint.New(strings.NewReader(string(body))).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	for name, f := range families {
		if !strings.HasPrefix(name, "sluice_") || name == "sluice_build_info" {
			continue
		}
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["component"] == "" || labels["name"] == "" {
				t.Errorf("%s%v lacks the component and name labels", name, labels)
			}
		}
	}
	return families
}

// seriesValue returns the value of the series name with exactly these
// labels, and whether families hold it.
func seriesValue(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	want := model.LabelSet{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[model.LabelName(labels[i])] = model.LabelValue(labels[i+1])
	}
outer:
	for _, m := range f.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		for _, l := range m.Label {
			if want[model.LabelName(l.GetName())] != model.LabelValue(l.GetValue()) {
				continue outer
			}
		}
		return value(m), true
	}
	return 0, false
}

func hasSeries(families map[string]*dto.MetricFamily, name string, labels ...string) bool {
	_, ok := seriesValue(families, name, labels...)
	return ok
}

// TestMetricsFromTheStart: before the agent has run, /metrics lints clean
// and holds every series its components can emit, at zero: each drop
// reason of each component, each error kind of each stage, plus
// sluice_build_info and the Go runtime and process collectors.
func TestMetricsFromTheStart(t *testing.T) {
	dir := t.TempDir()
	f := parseFile(t, dir, `
agent { data_dir = "`+dir+`" }
source "gadget" "exec" { gadget = "trace_exec" }
stage "wasm" "filter" {
  module = "drop-comm"
  params = { comms = ["sh"] }
}
sink "nats" "bus" { url = "nats://127.0.0.1:1" }
sink "file" "disk" { path = "events.jsonl" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.filter]
  sinks   = [sink.nats.bus, sink.file.disk, sink.stdout.out]
}
`)
	a, diags := New(f, Options{Stdout: io.Discard, Version: "v1.2.3", Commit: "abc"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	srv := httptest.NewServer(metricsHandler(a.metrics, a.opts.Version, a.opts.Commit))
	defer srv.Close()
	families := scrapeMetrics(t, srv.URL)

	type series struct {
		name   string
		labels []string
	}
	want := []series{
		{"sluice_build_info", []string{"version", "v1.2.3", "revision", "abc", "goversion", runtime.Version()}},
		{"sluice_queue_events", []string{"component", "pipeline", "name", "p"}},
		{"sluice_queue_bytes", []string{"component", "sink", "name", "bus"}},
		{"sluice_events_dropped_total", []string{"component", "source", "name", "exec", "reason", pipeline.ReasonKernel}},
		{"sluice_events_dropped_total", []string{"component", "pipeline", "name", "p", "reason", pipeline.ReasonQueueFull}},
		{"sluice_events_dropped_total", []string{"component", "stage", "name", "filter", "reason", pipeline.ReasonFiltered}},
		{"sluice_events_dropped_total", []string{"component", "stage", "name", "filter", "reason", pipeline.ReasonStageError}},
		{pipeline.MetricStageBatches, []string{"component", "stage", "name", "filter"}},
		{pipeline.MetricStageDuration, []string{"component", "stage", "name", "filter"}},
		{pipeline.MetricStageErrors, []string{"component", "stage", "name", "filter", "kind", "error"}},
	}
	for _, sk := range []string{"bus", "disk", "out"} {
		for _, r := range []string{pipeline.ReasonQueueFull, pipeline.ReasonSinkError, pipeline.ReasonShutdown} {
			want = append(want, series{"sluice_events_dropped_total", []string{"component", "sink", "name", sk, "reason", r}})
		}
		want = append(want, series{"sluice_errors_total", []string{"component", "sink", "name", sk}})
	}
	for _, r := range sinks.DropReasons("nats") {
		want = append(want, series{"sluice_events_dropped_total", []string{"component", "sink", "name", "bus", "reason", r}})
	}
	for _, r := range sinks.DropReasons("file") {
		want = append(want, series{"sluice_events_dropped_total", []string{"component", "sink", "name", "disk", "reason", r}})
	}
	for _, k := range wasmstages.ErrorKinds() {
		want = append(want, series{pipeline.MetricStageErrors, []string{"component", "stage", "name", "filter", "kind", k}})
	}
	for _, w := range want {
		if !hasSeries(families, w.name, w.labels...) {
			t.Errorf("no series %s%v", w.name, w.labels)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if families[name] == nil {
			t.Errorf("no %s: the Go runtime and process collectors are missing", name)
		}
	}
	for name, f := range families {
		for _, m := range f.Metric {
			if strings.HasPrefix(name, "sluice_") && name != "sluice_build_info" && value(m) != 0 {
				t.Errorf("%s = %v before the agent ran", name, value(m))
			}
		}
	}
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestStageVersionSeriesFromTheStart: before the agent has run, every Wasm
// stage has its reload results at zero (ok and the load failures), its
// last-swap time at zero, and, where they can happen to it, the fetch
// failures and tag checks (an image module or a control connection), a
// bad control value (a control connection), an unreadable file (a file
// module) and a rollback (rollback_after_errors). All lint clean and carry
// {component="stage",name}.
func TestStageVersionSeriesFromTheStart(t *testing.T) {
	fetch := []string{ReloadRegistry, ReloadNotFound, ReloadNotAllowed, ReloadSignature, ReloadBadImage}
	for _, c := range []struct {
		name, agent, stage string
		want, absent       []string // reload results
		checks             bool
	}{
		{name: "built-in", stage: `module = "drop-comm"`,
			absent: append(fetch, ReloadBadRef, ReloadUnreadable, ReloadRolledBack)},
		{name: "file with rollback, control",
			agent:  "control {\n nats { url = \"nats://127.0.0.1:1\" }\n}",
			stage:  fmt.Sprintf("module = %q\nreload {\n rollback_after_errors = 3\n}", testGuest(t, "tag_patchable")),
			want:   append(fetch, ReloadBadRef, ReloadUnreadable, ReloadRolledBack),
			checks: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			f := parseFile(t, dir, fmt.Sprintf(`
agent {
  data_dir = %q
  %s
}
source "gadget" "exec" { gadget = "trace_exec" }
stage "wasm" "s" {
  %s
}
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.s]
  sinks   = [sink.stdout.out]
}
`, dir, c.agent, c.stage))
			a, diags := New(f, Options{Stdout: io.Discard})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			srv := httptest.NewServer(metricsHandler(a.metrics, "", ""))
			defer srv.Close()
			families := scrapeMetrics(t, srv.URL)
			stage := []string{"component", "stage", "name", "s"}
			for _, r := range append(wasmstages.ReloadResults(), c.want...) {
				if v, ok := seriesValue(families, wasmstages.MetricReloads, append(stage, "result", r)...); !ok || v != 0 {
					t.Errorf("%s{result=%q}: %v (present: %v), want 0", wasmstages.MetricReloads, r, v, ok)
				}
			}
			for _, r := range c.absent {
				if hasSeries(families, wasmstages.MetricReloads, append(stage, "result", r)...) {
					t.Errorf("%s{result=%q} is there, but cannot happen to this stage", wasmstages.MetricReloads, r)
				}
			}
			if v, ok := seriesValue(families, MetricStageLastSwap, stage...); !ok || v != 0 {
				t.Errorf("%s: %v (present: %v), want 0", MetricStageLastSwap, v, ok)
			}
			if got := hasSeries(families, MetricStageVersionChecks, stage...); got != c.checks {
				t.Errorf("%s present: %v, want %v", MetricStageVersionChecks, got, c.checks)
			}
			if hasSeries(families, MetricStageInfo) {
				t.Errorf("%s before the stage runs a version", MetricStageInfo)
			}
		})
	}
}

// /metrics answers a scraper that offers gzip with the plain text: the
// page is small, and a compressor per scrape was most of its memory.
func TestMetricsUncompressed(t *testing.T) {
	srv := httptest.NewServer(metricsHandler(pipeline.NewRegistry(), "v1", "abc"))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	// Set by hand, the transport leaves the body as it comes.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" {
		t.Errorf("Content-Encoding %q, want none", enc)
	}
	if !strings.Contains(string(body), "sluice_build_info{") {
		t.Errorf("the body is not the text exposition:\n%.200s", body)
	}
}
