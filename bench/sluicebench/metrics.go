package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// series is one sample of a scrape: a metric name, its labels and value.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape is the agent's /metrics at one moment.
type scrape struct {
	at     time.Time
	series []series
}

func getMetrics(addr string) (scrape, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return scrape{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return scrape{}, fmt.Errorf("get /metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format (what the agent serves to
// a client that does not ask for OpenMetrics).
func parseMetrics(r io.Reader) (scrape, error) {
	s := scrape{at: time.Now()}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		head := line[:sp]
		ser := series{value: v, labels: map[string]string{}}
		if i := strings.IndexByte(head, '{'); i >= 0 {
			ser.name = head[:i]
			rest := strings.TrimSuffix(head[i+1:], "}")
			for rest != "" {
				eq := strings.IndexByte(rest, '=')
				if eq < 0 || eq+1 >= len(rest) || rest[eq+1] != '"' {
					break
				}
				key := rest[:eq]
				rest = rest[eq+2:]
				var val strings.Builder
				j := 0
				for ; j < len(rest) && rest[j] != '"'; j++ {
					if rest[j] == '\\' && j+1 < len(rest) {
						j++
					}
					val.WriteByte(rest[j])
				}
				ser.labels[key] = val.String()
				rest = strings.TrimPrefix(rest[min(j+1, len(rest)):], ",")
			}
		} else {
			ser.name = head
		}
		s.series = append(s.series, ser)
	}
	return s, sc.Err()
}

// sum adds up the series called name whose labels include every pair of
// match (key, value, ...); a value "!x" matches any value but x.
func (s scrape) sum(name string, match ...string) float64 {
	var total float64
	for _, ser := range s.series {
		if ser.name == name && matches(ser.labels, match) {
			total += ser.value
		}
	}
	return total
}

func matches(labels map[string]string, match []string) bool {
	for i := 0; i+1 < len(match); i += 2 {
		v, ok := labels[match[i]]
		want := match[i+1]
		if strings.HasPrefix(want, "!") {
			if v == want[1:] {
				return false
			}
			continue
		}
		if !ok || v != want {
			return false
		}
	}
	return true
}

// drops returns the drop counts of the matching components by
// "component/reason", leaving out reasons in skip.
func (s scrape) drops(skip []string, match ...string) map[string]float64 {
	out := map[string]float64{}
	for _, ser := range s.series {
		if ser.name != "sluice_events_dropped_total" || !matches(ser.labels, match) || ser.value == 0 {
			continue
		}
		if slices.Contains(skip, ser.labels["reason"]) {
			continue
		}
		out[ser.labels["component"]+"/"+ser.labels["reason"]] += ser.value
	}
	return out
}

// bucket is a cumulative histogram bucket.
type bucket struct {
	le    float64
	count float64
}

// histogram returns the cumulative buckets of the histogram name (summed
// over the matching series), by upper bound.
func (s scrape) histogram(name string, match ...string) []bucket {
	byLE := map[float64]float64{}
	for _, ser := range s.series {
		if ser.name != name+"_bucket" || !matches(ser.labels, match) {
			continue
		}
		le, err := strconv.ParseFloat(ser.labels["le"], 64)
		if ser.labels["le"] == "+Inf" {
			le, err = math.Inf(1), nil
		}
		if err != nil {
			continue
		}
		byLE[le] += ser.value
	}
	out := make([]bucket, 0, len(byLE))
	for le, c := range byLE {
		out = append(out, bucket{le, c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// histDelta is b - a, bucket by bucket (a histogram of what was observed
// between two scrapes).
func histDelta(a, b []bucket) []bucket {
	out := make([]bucket, len(b))
	for i, bk := range b {
		out[i] = bk
		for _, ak := range a {
			if ak.le == bk.le {
				out[i].count -= ak.count
			}
		}
	}
	return out
}

// quantile estimates the q-quantile of a cumulative histogram by linear
// interpolation inside the bucket that holds it, as Prometheus'
// histogram_quantile does; NaN when it is empty. A quantile in the +Inf
// bucket is reported as the largest finite bound.
func quantile(q float64, bs []bucket) float64 {
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return math.NaN()
	}
	total := bs[len(bs)-1].count
	rank := q * total
	prevLE, prevCount := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return prevLE
			}
			if b.count == prevCount {
				return b.le
			}
			return prevLE + (b.le-prevLE)*(rank-prevCount)/(b.count-prevCount)
		}
		prevLE, prevCount = b.le, b.count
	}
	return prevLE
}
