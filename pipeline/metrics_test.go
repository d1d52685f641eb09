package pipeline

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	helpLine   = regexp.MustCompile(`^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$`)
	typeLine   = regexp.MustCompile(`^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$`)
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9]+(?:\.[0-9]+)?(?:e[-+][0-9]+)?)$`)
)

// checkExposition parses text in the Prometheus text format strictly enough
// to catch malformed output: every sample belongs to the family announced by
// the HELP and TYPE lines before it, and no family or series appears twice.
func checkExposition(t *testing.T, text string) {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Errorf("exposition does not end with a newline")
	}
	families := map[string]bool{}
	types := map[string]string{}
	series := map[string]bool{}
	current := ""
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := helpLine.FindStringSubmatch(line); m != nil {
			if families[m[1]] {
				t.Errorf("family %s announced twice", m[1])
			}
			families[m[1]] = true
			if i+1 >= len(lines) || typeLine.FindStringSubmatch(lines[i+1]) == nil || typeLine.FindStringSubmatch(lines[i+1])[1] != m[1] {
				t.Errorf("HELP for %s not followed by its TYPE line", m[1])
			} else {
				types[m[1]] = typeLine.FindStringSubmatch(lines[i+1])[2]
			}
			current = m[1]
			i++
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("malformed line %q", line)
			continue
		}
		if m[1] != current && !(types[current] == "histogram" && (m[1] == current+"_bucket" || m[1] == current+"_sum" || m[1] == current+"_count")) {
			t.Errorf("sample %q outside its family (current %s)", line, current)
		}
		key := m[1] + m[2]
		if series[key] {
			t.Errorf("series %s appears twice", key)
		}
		series[key] = true
	}
}

func TestRegistryExposition(t *testing.T) {
	r := NewRegistry()
	c := r.Component("sink", `we"ird\name`)
	c.Received.Add(5)
	c.Sent.Add(3)
	c.Dropped(ReasonQueueFull).Add(2)
	r.Counter("sluice_kernel_lost_samples_total", "Samples\nlost.", "source", "exec", "map", "events").Add(7)
	r.Component("pipeline", "p").Gauge(MetricQueueLen, "Events waiting in a queue.").Set(-1)

	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	text := string(body)
	checkExposition(t, text)
	for _, want := range []string{
		`sluice_events_received_total{component="sink",name="we\"ird\\name"} 5`,
		`sluice_events_sent_total{component="sink",name="we\"ird\\name"} 3`,
		`sluice_events_dropped_total{component="sink",name="we\"ird\\name",reason="queue_full"} 2`,
		`sluice_errors_total{component="sink",name="we\"ird\\name"} 0`,
		`# HELP sluice_kernel_lost_samples_total Samples\nlost.`,
		`sluice_kernel_lost_samples_total{map="events",source="exec"} 7`,
		`# TYPE sluice_queue_events gauge`,
		`sluice_queue_events{component="pipeline",name="p"} -1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("exposition lacks line %q; got:\n%s", want, text)
		}
	}
}

func TestHistogramExposition(t *testing.T) {
	r := NewRegistry()
	h := r.Histogram("sluice_test_seconds", "Test durations.", "name", "a")
	if h != r.Histogram("sluice_test_seconds", "Test durations.", "name", "a") {
		t.Error("Histogram is not cached")
	}
	for _, d := range []time.Duration{5 * time.Microsecond, 10 * time.Microsecond, 3 * time.Millisecond, 2 * time.Second, -time.Second} {
		h.Observe(d)
	}
	var buf strings.Builder
	if _, err := r.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	checkExposition(t, text)
	for _, want := range []string{
		`# TYPE sluice_test_seconds histogram`,
		// 0, 5µs and 10µs: a bound is inclusive.
		`sluice_test_seconds_bucket{le="1e-05",name="a"} 3`,
		`sluice_test_seconds_bucket{le="0.0025",name="a"} 3`,
		`sluice_test_seconds_bucket{le="0.005",name="a"} 4`,
		`sluice_test_seconds_bucket{le="1",name="a"} 4`,
		`sluice_test_seconds_bucket{le="+Inf",name="a"} 5`,
		`sluice_test_seconds_sum{name="a"} 2.003015`,
		`sluice_test_seconds_count{name="a"} 5`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("exposition lacks line %q; got:\n%s", want, text)
		}
	}
	snap := r.Snapshot()
	if got := snap.Get("sluice_test_seconds_count", "name", "a"); got != 5 {
		t.Errorf("snapshot count = %v, want 5", got)
	}
	if got := snap.Get("sluice_test_seconds_bucket", "name", "a", "le", "0.005"); got != 4 {
		t.Errorf("snapshot bucket le=0.005 = %v, want 4", got)
	}
}

func TestRegistryIdentityAndSnapshot(t *testing.T) {
	r := NewRegistry()
	a := r.Counter("x_total", "x", "a", "1", "b", "2")
	b := r.Counter("x_total", "x", "b", "2", "a", "1")
	if a != b {
		t.Error("same labels in another order gave another counter")
	}
	if r.Component("source", "s") != r.Component("source", "s") {
		t.Error("Component is not cached")
	}
	c := r.Component("source", "s")
	if c.Dropped("kernel") != c.Dropped("kernel") {
		t.Error("Dropped is not cached per reason")
	}
	a.Add(4)
	c.Dropped("kernel").Add(2)
	snap := r.Snapshot()
	if got := snap.Get("x_total", "b", "2", "a", "1"); got != 4 {
		t.Errorf("snapshot x_total = %v, want 4", got)
	}
	if got := snap.Get(MetricDropped, "reason", "kernel", "component", "source", "name", "s"); got != 2 {
		t.Errorf("snapshot dropped = %v, want 2", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a counter name as a gauge did not panic")
		}
	}()
	r.Gauge("x_total", "x")
}

func TestRegistryRemove(t *testing.T) {
	r := NewRegistry()
	r.Gauge("info", "i", "name", "s", "digest", "old").Set(1)
	r.Gauge("info", "i", "name", "s", "digest", "new").Set(1)
	r.Remove("info", "digest", "old", "name", "s")
	r.Remove("info", "name", "nothing")
	r.Remove("no_such_family")
	var b strings.Builder
	r.WriteTo(&b)
	if strings.Contains(b.String(), "old") || !strings.Contains(b.String(), `info{digest="new",name="s"} 1`) {
		t.Errorf("after removing the old series:\n%s", b.String())
	}
	if got := r.Snapshot().Get("info", "name", "s", "digest", "old"); got != 0 {
		t.Errorf("the removed series is still in snapshots: %v", got)
	}
}

func TestRegistryConcurrent(t *testing.T) {
	r := NewRegistry()
	const workers, per = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				c := r.Component("stage", "s")
				c.Received.Inc()
				c.Dropped([]string{"a", "b"}[(w+i)%2]).Inc()
				if i%100 == 0 {
					_, _ = r.WriteTo(io.Discard)
				}
			}
		})
	}
	wg.Wait()
	c := r.Component("stage", "s")
	got := map[string]uint64{"received": c.Received.Value(), "dropped": c.DroppedTotal(), "a": c.Dropped("a").Value()}
	want := map[string]uint64{"received": workers * per, "dropped": workers * per, "a": workers * per / 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}
